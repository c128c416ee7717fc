from __future__ import annotations

from typing import Literal

from torch import Tensor

from ._registry import LOSSES
from .base import MatchLoss, kept, masked_mean


@LOSSES.register("mse", aliases=("l2",))
class MSE(MatchLoss):
    """Mean squared error, with two reductions:

    * ``element`` (default): L = mean over kept elements of (s − t)² — on an edge graph [N, N, D] this is
      the mean over kept edges of ‖s_ij − t_ij‖² / D, so its scale shrinks with D (C classes for VRM's
      inter-sample graph, (1+k)·B nodes for its inter-class graph);
    * ``edge``: L = mean over kept edges of ‖s_ij − t_ij‖² (sum over the relation axis, mean over the
      edges) — the per-edge squared distance, whose scale does not depend on D (for unit-norm edges it
      lies in [0, 4]).  Needs an edge-vector affinity (``edge``, ``class-edge``, ``virtual-relation``).

    Source: the squared error of RKD/VRM-style relation matching; the ``edge`` reduction is akd's named
    option for VRM's edge graphs, whose paper does not state its reduction.
    """

    def __init__(self, reduction: Literal["element", "edge"] = "element"):
        super().__init__()
        self.reduction = reduction
        self.needs_edge_vectors = reduction == "edge"

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask), kept(t, mask)
        sq = (s - t).pow(2)
        return masked_mean(sq.sum(-1) if self.reduction == "edge" else sq, mask)

    def edge_reduce(self, sq: Tensor, mask: Tensor | None, dim: int) -> Tensor:
        value = masked_mean(sq, mask)
        return value if self.reduction == "edge" else value / dim
