"""Affinities: how relations are computed from a representation (one file each).

See :mod:`akd.affinity.base` for the graph/relation-axis conventions.
"""

from ._registry import AFFINITIES
from .base import Affinity, Graph, Nodes
from . import identity, gram, cosine, euclidean, angle, rbf, edge, class_edge, virtual_relation  # noqa: F401
from . import class_identity  # noqa: F401
from . import _edge_gram as edge_gram  # noqa: F401  (closed-form matching of edge graphs)

__all__ = ["AFFINITIES", "Affinity", "Graph", "Nodes"]
