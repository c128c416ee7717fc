from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ..registry import require
from ._registry import LOSSES
from .base import MatchLoss, kept


@LOSSES.register("kl")
class KL(MatchLoss):
    """KL(teacher ‖ student) over probability rows: row_i = Σ_k t_ik (log(t_ik + eps) − log(s_ik + eps)).

    ``batchmean``: mean over (kept) rows of row_i; ``mean``: mean over every (kept) entry,
    i.e. batchmean / D.  eps = 1e-7 (PKT's reference code computes
    mean(t · log((t + eps) / (s + eps))), which is ``kl(reduction=mean)``).
    Needs probability rows: refused after a normalisation that does not produce them.
    """

    elementwise = False
    needs_probabilities = True

    def __init__(self, reduction: Literal["batchmean", "mean"] = "batchmean", eps: float = 1e-7):
        super().__init__()
        require(eps >= 0, f"kl: eps={eps} must be >= 0")
        self.reduction, self.eps = reduction, eps

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask, 1.0), kept(t, mask, 1.0)  # pruned rows: t = s = 1 → 0
        elem = t * ((t + self.eps).log() - (s + self.eps).log())
        elem = torch.where(t > 0, elem, elem.new_zeros(()))  # 0 · log 0 = 0
        rows = elem.sum(dim=-1)
        d = s.shape[-1] if self.reduction == "mean" else 1
        if mask is None:
            return rows.mean() / d
        return torch.where(mask, rows, rows.new_zeros(())).sum() / (mask.sum().clamp_min(1) * d)
