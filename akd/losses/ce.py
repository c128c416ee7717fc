from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from . import LOSSES
from .base import MatchLoss


@LOSSES.register("ce", aliases=("cross-entropy",))
class CrossEntropy(MatchLoss):
    """Cross-entropy with the labels on the student's logits of the real view: mean_i −log softmax(z_i)_{y_i}.

    Instance term (affinity ``identity``, norm ``none``); ignores the teacher.
    ``label_smoothing`` as in ``F.cross_entropy``.
    """

    needs_targets = True
    uses_teacher = False
    instance = True

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        require(0.0 <= label_smoothing < 1.0, f"ce: label_smoothing={label_smoothing} must be in [0, 1)")
        self.label_smoothing = label_smoothing

    def forward(self, s: Tensor, t: Tensor | None, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        return F.cross_entropy(s, targets, label_smoothing=self.label_smoothing)
