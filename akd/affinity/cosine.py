from __future__ import annotations

from torch import Tensor

from ..registry import require
from ._registry import AFFINITIES
from .base import Affinity


@AFFINITIES.register("cosine")
class Cosine(Affinity):
    """Cosine similarity A_ij = x̂_i · x̂_j with x̂ = x / (‖x‖₂ + eps); ``shift``: (A + 1) / 2 ∈ [0, 1].

    Source: Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge
    Transfer", ECCV 2018 (PKT); eps = 1e-7 as in its reference code (RepDistiller).
    """

    def __init__(self, shift: bool = False, eps: float = 1e-7):
        super().__init__()
        require(eps >= 0, f"cosine: eps={eps} must be >= 0")
        self.shift, self.eps = shift, eps
        self.nonnegative = shift

    def relation(self, x: Tensor) -> Tensor:
        xh = x / (x.norm(dim=-1, keepdim=True) + self.eps)
        a = xh @ xh.t()
        return (a + 1.0) / 2.0 if self.shift else a
