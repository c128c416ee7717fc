from __future__ import annotations

from torch import Tensor

from ..registry import require
from ._registry import NORMALIZATIONS
from .base import Normalization


@NORMALIZATIONS.register("mean")
class MeanNorm(Normalization):
    """Whole-graph scale normalisation N(A) = A / mean{A_ij : A_ij > 0} (eps = 1e-12 guard).

    Source: Park et al., RKD, CVPR 2019: distances divided by the mean of the positive
    (off-diagonal) distances, separately for teacher and student.  Unlike the other
    normalisations this uses one scalar per graph, not one per row.  Needs non-negative
    relations; scale invariant.  Computed without a host sync (masked sum / count).
    """

    requires_nonnegative = True

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        require(eps > 0, f"mean: eps={eps} must be > 0")
        self.eps = eps

    def forward(self, rel: Tensor) -> Tensor:
        pos = rel > 0
        m = (rel * pos).sum() / pos.sum().clamp_min(1)
        return rel / m.clamp_min(self.eps)
