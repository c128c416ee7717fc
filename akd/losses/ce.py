from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ._registry import LOSSES
from .base import MatchLoss


@LOSSES.register("ce", aliases=("cross-entropy",))
class CrossEntropy(MatchLoss):
    """Cross-entropy with the labels on the student's logits of the real view: mean_i −log softmax(z_i)_{y_i}.

    Instance term (affinity ``identity``, norm ``none``); ignores the teacher.
    ``label_smoothing`` as in ``F.cross_entropy``.  ``virtual=True``: also on the virtual views of an objective
    that reads them (each view labelled as its image; mean over all (1+k)·B rows) — VRM's open option of
    supervising the virtual view too (the paper does not say; off by default).
    """

    needs_targets = True
    uses_teacher = False
    instance = True

    def __init__(self, label_smoothing: float = 0.0, virtual: bool = False):
        super().__init__()
        require(0.0 <= label_smoothing < 1.0, f"ce: label_smoothing={label_smoothing} must be in [0, 1)")
        self.label_smoothing = label_smoothing
        self.reads_views = virtual

    def forward(self, s: Tensor, t: Tensor | None, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        return F.cross_entropy(s, targets, label_smoothing=self.label_smoothing)
