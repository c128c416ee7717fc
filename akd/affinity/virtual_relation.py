from __future__ import annotations

from torch import Tensor

from ..registry import require
from ._registry import AFFINITIES
from .base import Affinity, Graph, Nodes
from .edge import edges


@AFFINITIES.register("virtual-relation", aliases=("vrm",))
class VirtualRelation(Affinity):
    """VRM's two edge-vector graphs over the real and ``views`` virtual views of each image.

    Nodes are the (1+k)·B rows [real view; virtual view 1; …] of the representation (logits
    in VRM), so the graphs carry real–real, real–virtual (incl. inter-view: same image,
    different view) and virtual–virtual relations:

    * ``is`` (inter-sample, kind ``sample``): E[i, j] = x_i − x_j → [(1+k)B, (1+k)B, C]
    * ``ic`` (inter-class,  kind ``class``):  E[a, b] = X[:, a] − X[:, b] → [C, C, (1+k)B]

    Each graph is normalised and matched separately; the term's value is
    ``is_weight · L_is + ic_weight · L_ic``.  Source: Zhang et al., "VRM: Knowledge
    Distillation via Virtual Relation Matching", ICCV 2025.  ``views=0`` builds the same
    graphs over real views only (the "no virtual views" ablation).
    """

    edge_vectors = True

    def __init__(self, views: int = 1, is_weight: float = 1.0, ic_weight: float = 1.0):
        super().__init__()
        require(views >= 0, f"virtual-relation: views={views} must be >= 0")
        require(is_weight >= 0 and ic_weight >= 0, "virtual-relation: is_weight and ic_weight must be >= 0")
        require(is_weight > 0 or ic_weight > 0, "virtual-relation: is_weight and ic_weight cannot both be 0")
        self.views, self.is_weight, self.ic_weight = views, is_weight, ic_weight

    @property
    def graph_kinds(self) -> set[str]:
        return {k for k, w in (("sample", self.is_weight), ("class", self.ic_weight)) if w > 0}

    def graphs(self, x: Tensor, nodes: Nodes) -> list[Graph]:
        out = []
        if self.is_weight > 0:
            out.append(Graph("is", None, "sample", self.is_weight, nodes=x))
        if self.ic_weight > 0:
            out.append(Graph("ic", None, "class", self.ic_weight, nodes=x.t()))
        return out

    def relation(self, x: Tensor) -> Tensor:
        return edges(x)
