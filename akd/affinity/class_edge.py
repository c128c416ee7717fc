from __future__ import annotations

from torch import Tensor

from ._registry import AFFINITIES
from .base import Affinity
from .edge import edges


@AFFINITIES.register("class-edge", aliases=("inter-class",))
class ClassEdge(Affinity):
    """Inter-class edge vectors E[a, b] = X[:, a] − X[:, b] ∈ R^N for X ∈ R^{N×C} → [C, C, N].

    Source: Zhang et al., VRM, ICCV 2025 (inter-class relations: how the difference of two
    class scores varies across the nodes of the batch).  Relation axis = N.
    """

    edge_vectors = True

    kind = "class"

    def edge_nodes(self, x: Tensor) -> Tensor:
        return x.t()

    def relation(self, x: Tensor) -> Tensor:
        return edges(x.t())
