from __future__ import annotations

from torch import Tensor

from ._registry import NORMALIZATIONS
from .base import Normalization


@NORMALIZATIONS.register("none", aliases=("identity",))
class NoNorm(Normalization):
    """No normalisation: N(a) = a."""

    def forward(self, rel: Tensor) -> Tensor:
        return rel
