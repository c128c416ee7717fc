"""Affinities: how relations are computed from a representation (one file each).

See :mod:`akd.affinity.base` for the graph/relation-axis conventions.
"""

from ..registry import Registry

AFFINITIES = Registry("affinity")

from .base import Affinity, Graph, Nodes  # noqa: E402
from . import identity, gram, cosine, euclidean, angle, rbf, edge, class_edge, virtual_relation  # noqa: E402,F401
from . import class_identity  # noqa: E402,F401
from . import _edge_gram as edge_gram  # noqa: E402,F401  (closed-form matching of edge graphs)

__all__ = ["AFFINITIES", "Affinity", "Graph", "Nodes"]
