from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import LOSSES
from .base import MatchLoss


@LOSSES.register("cosine", aliases=("cos",))
class CosineLoss(MatchLoss):
    """L = mean_kept (1 − cos(s_i, t_i)) over rows / edge vectors (F.cosine_similarity, eps 1e-8)."""

    elementwise = False

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        rows = 1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)
        if mask is None:
            return rows.mean()
        return torch.where(mask, rows, rows.new_zeros(())).sum() / mask.sum().clamp_min(1)
