from __future__ import annotations

from torch import Tensor

from ._registry import AFFINITIES
from .base import Affinity


def edges(x: Tensor) -> Tensor:
    """E[i, j] = x_i − x_j for X ∈ R^{N×D} → [N, N, D]."""
    return x.unsqueeze(1) - x.unsqueeze(0)


@AFFINITIES.register("edge", aliases=("inter-sample",))
class Edge(Affinity):
    """Inter-sample edge vectors E[i, j] = x_i − x_j ∈ R^D → [N, N, D].

    Source: Zhang et al., "VRM: Knowledge Distillation via Virtual Relation Matching",
    ICCV 2025 (inter-sample relations carried as edge vectors, not scalars).  Relation
    axis = D: normalisations act on each edge vector.  Signed; E[j, i] = −E[i, j].
    """

    edge_vectors = True

    def edge_nodes(self, x: Tensor) -> Tensor:
        return x

    def relation(self, x: Tensor) -> Tensor:
        return edges(x)

