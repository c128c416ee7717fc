from __future__ import annotations

from torch import Tensor

from . import LOSSES
from .base import MatchLoss, kept, masked_mean


@LOSSES.register("mse", aliases=("l2",))
class MSE(MatchLoss):
    """Mean squared error  L = mean_kept (s − t)²  (mean over every kept element)."""

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask), kept(t, mask)
        return masked_mean((s - t).pow(2), mask)
