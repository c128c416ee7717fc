from __future__ import annotations

from torch import Tensor

from ..registry import require
from ._registry import NORMALIZATIONS
from .base import Normalization


@NORMALIZATIONS.register("l1", aliases=("sum",))
class L1(Normalization):
    """Row-sum normalisation N(a) = a / max(Σ_k a_k, eps) (eps = 1e-12) for non-negative a.

    Rows of a non-negative relation become probability distributions.  Source: PKT
    (Passalis & Tefas, ECCV 2018) turns shifted cosine similarities into conditional
    probabilities this way.  Refused at build time for affinities that can be negative.
    """

    requires_nonnegative = True
    probabilities = True

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        require(eps > 0, f"l1: eps={eps} must be > 0")
        self.eps = eps

    def forward(self, rel: Tensor) -> Tensor:
        return rel / rel.sum(dim=-1, keepdim=True).clamp_min(self.eps)
