from __future__ import annotations

from torch import Tensor

from ._registry import LOSSES
from .base import MatchLoss, kept, masked_sum


@LOSSES.register("frobenius", aliases=("fro",))
class Frobenius(MatchLoss):
    """Squared Frobenius norm per pair: L = Σ (s − t)² / N², N² = number of (kept) (i, j) positions.

    Source: SP (Tung & Mori, ICCV 2019): ‖G_s − G_t‖²_F / b².  For [N, N] matrices this
    equals ``mse``; for edge tensors [N, N, D] it is D × mse.
    """

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask), kept(t, mask)
        total, count = masked_sum((s - t).pow(2), mask)
        return total / count
