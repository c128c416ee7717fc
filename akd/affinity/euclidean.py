from __future__ import annotations

import torch
from torch import Tensor

from ..registry import require
from ._registry import AFFINITIES
from .base import Affinity, pairwise_sq_dists


@AFFINITIES.register("euclidean", aliases=("distance",))
class Euclidean(Affinity):
    """Pairwise distances A_ij = √max(‖x_i − x_j‖², eps) with A_ii = 0 (eps = 1e-12).

    Source: Park et al., "Relational Knowledge Distillation", CVPR 2019 (RKD-D), following
    its reference ``pdist``: squared distances by the Gram identity, clamped at eps, then √.
    ``squared=True`` skips the square root.
    """

    nonnegative = True

    def __init__(self, squared: bool = False, eps: float = 1e-12):
        super().__init__()
        require(eps > 0, f"euclidean: eps={eps} must be > 0")
        self.squared, self.eps = squared, eps

    def relation(self, x: Tensor) -> Tensor:
        d = pairwise_sq_dists(x).clamp_min(self.eps)
        if not self.squared:
            d = d.sqrt()
        eye = torch.eye(d.shape[0], dtype=torch.bool, device=d.device)
        return d.masked_fill(eye, 0.0)
