from __future__ import annotations

from torch import Tensor

from ..registry import require
from ._registry import NORMALIZATIONS
from .base import Normalization


@NORMALIZATIONS.register("softmax")
class Softmax(Normalization):
    """Softmax with temperature along the relation axis: N(a)_k = exp(a_k / t) / Σ_l exp(a_l / t).

    Rows become probability distributions (so ``kl`` can match them).  Translation
    invariant: N(a + c) = N(a).
    """

    probabilities = True
    makes_nonnegative = True

    def __init__(self, t: float = 1.0):
        super().__init__()
        require(t > 0, f"softmax: t={t} must be > 0")
        self.t = t

    def forward(self, rel: Tensor) -> Tensor:
        return (rel / self.t).softmax(dim=-1)
