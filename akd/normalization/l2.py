from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ._registry import NORMALIZATIONS
from .base import Normalization


@NORMALIZATIONS.register("l2")
class L2(Normalization):
    """L2 normalisation along the relation axis: N(a) = a / max(‖a‖₂, eps), eps = 1e-12.

    Source: SP (Tung & Mori, ICCV 2019) normalises each row of the Gram matrix this way
    (``F.normalize``).  Scale invariant: N(s·a) = N(a) for s > 0.
    """

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        require(eps > 0, f"l2: eps={eps} must be > 0")
        self.eps = eps

    def forward(self, rel: Tensor) -> Tensor:
        return F.normalize(rel, p=2, dim=-1, eps=self.eps)
