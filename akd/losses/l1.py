from __future__ import annotations

from torch import Tensor

from ._registry import LOSSES
from .base import MatchLoss, kept, masked_mean


@LOSSES.register("l1", aliases=("mae",))
class L1Loss(MatchLoss):
    """Mean absolute error  L = mean_kept |s − t|."""

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask), kept(t, mask)
        return masked_mean((s - t).abs(), mask)
