from __future__ import annotations

from torch import Tensor

from ..registry import require
from ._registry import NORMALIZATIONS
from .base import Normalization


@NORMALIZATIONS.register("zs", aliases=("zscore", "zsnorm"))
class ZScore(Normalization):
    """Z-score ("ZSNorm") along the relation axis: N(a) = (a − μ(a)) / √(σ²(a) + eps).

    μ and σ² are the mean and the population variance (1/D) over the relation axis;
    eps = 1e-7 keeps the value and its gradient finite for constant vectors (which map
    to 0).  Translation and scale invariant: N(s·a + c) = N(a) for s > 0, up to eps.
    Our reading of VRM's ZSNorm (Zhang et al., ICCV 2025), which applies it to each edge
    vector; the other reading (standardise the logits before building relations, as in
    Sun et al., "Logit Standardization in KD", CVPR 2024) is ``pre = "zs"`` on a term.
    """

    keeps_nonnegative = False

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        require(eps > 0, f"zs: eps={eps} must be > 0")
        self.eps = eps

    def forward(self, rel: Tensor) -> Tensor:
        mu = rel.mean(dim=-1, keepdim=True)
        c = rel - mu
        var = c.pow(2).mean(dim=-1, keepdim=True)
        return c * (var + self.eps).rsqrt()
