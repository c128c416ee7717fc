from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ._registry import LOSSES
from .base import MatchLoss


@LOSSES.register("kd", aliases=("hinton",))
class HintonKD(MatchLoss):
    """Hinton KD: L = T² · (1/B) Σ_i KL(softmax(t_i / T) ‖ softmax(s_i / T)), T = 4.

    Source: Hinton et al., "Distilling the Knowledge in a Neural Network", 2015; T = 4
    and the T² factor as in RepDistiller/mdistiller.  Instance term on raw logits
    (affinity ``identity``, norm ``none``), real view only.
    """

    instance = True
    elementwise = False

    def __init__(self, t: float = 4.0):
        super().__init__()
        require(t > 0, f"kd: t={t} must be > 0")
        self.t = t

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        log_ps = F.log_softmax(s / self.t, dim=-1)
        log_pt = F.log_softmax(t / self.t, dim=-1)
        return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * self.t**2
