from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ._registry import LOSSES
from .base import MatchLoss, kept, masked_mean


@LOSSES.register("smooth-l1", aliases=("huber", "smooth_l1"))
class SmoothL1(MatchLoss):
    """Smooth-L1 (Huber) L = mean_kept h(s − t), h(d) = 0.5 d²/β if |d| < β else |d| − 0.5β; β = 1.

    Source: RKD (Park et al., CVPR 2019) matches distances and angles with
    ``F.smooth_l1_loss`` (β = 1, mean over all entries).
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        require(beta > 0, f"smooth-l1: beta={beta} must be > 0")
        self.beta = beta

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask), kept(t, mask)
        return masked_mean(F.smooth_l1_loss(s, t, reduction="none", beta=self.beta), mask)
