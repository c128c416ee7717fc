from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._registry import LOSSES
from .base import MatchLoss, kept


@LOSSES.register("cosine", aliases=("cos",))
class CosineLoss(MatchLoss):
    """L = mean_kept (1 − cos(s_i, t_i)) over rows / edge vectors (F.cosine_similarity, eps 1e-8).

    Two all-zero rows (e.g. the self-edges E[i, i] = 0) count as matched (0), not as cos = 0.
    """

    elementwise = False

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask, 1.0), kept(t, mask, 1.0)
        rows = 1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)
        both_zero = (s.abs().amax(dim=-1) == 0) & (t.abs().amax(dim=-1) == 0)
        rows = torch.where(both_zero, torch.zeros_like(rows), rows)  # two zero vectors (self-edges) match
        if mask is None:
            return rows.mean()
        return torch.where(mask, rows, rows.new_zeros(())).sum() / mask.sum().clamp_min(1)
