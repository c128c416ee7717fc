from __future__ import annotations

from torch import Tensor

from ._registry import AFFINITIES
from .base import Affinity


@AFFINITIES.register("gram", aliases=("dot",))
class Gram(Affinity):
    """Gram (dot-product) matrix A = X Xᵀ ∈ R^{N×N} of the flattened representation.

    Source: Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019 (SP),
    G = Q Qᵀ with Q the flattened feature map.  Signed in general.
    """

    def relation(self, x: Tensor) -> Tensor:
        return x @ x.t()
