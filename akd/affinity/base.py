"""Contracts shared by all affinities.

An affinity maps one representation ``X`` (rows = nodes, flattened to ``[N, D]``)
to one or more *graphs*.  Every graph is a tensor whose **last axis is the
relation axis**: normalisations act along it and row-wise losses reduce over it.

=============  =====================  ==========================================
kind           shape                  meaning of the last axis
=============  =====================  ==========================================
``instance``   ``[N, D]``             the features of node i (identity)
``sample``     ``[N, N]`` or          row i of a pairwise matrix, or the edge
               ``[N, N, D]``          vector of pair (i, j)
``class``      ``[C, C, N]``          edge vector of class pair (a, b) over nodes
``triplet``    ``[N, N, N]``          angles at apex i between j and all k
=============  =====================  ==========================================

Pruning masks address the first two axes (node or class pairs) of ``sample``
and ``class`` graphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Nodes:
    """Layout of the rows of a representation: ``batch`` real images, then ``views`` virtual views of them.

    Row ``v * batch + i`` is view ``v`` (0 = real) of image ``i``.
    """

    batch: int
    views: int = 0

    @property
    def n(self) -> int:
        return (1 + self.views) * self.batch

    def view_index(self, device=None) -> Tensor:
        return torch.arange(self.n, device=device) // self.batch


@dataclass
class Graph:
    """One relation graph produced by an affinity.

    Edge graphs may be given *implicitly* by their node matrix ``nodes`` [N, D] (edges
    E[i, j] = nodes_i − nodes_j); ``relation`` materialises them on demand, and a term can
    match them in closed form instead (:mod:`akd.affinity._edge_gram`).
    """

    name: str
    rel: Tensor | None
    kind: str
    weight: float = 1.0
    nodes: Tensor | None = None

    @property
    def relation(self) -> Tensor:
        if self.rel is None:
            self.rel = self.nodes.unsqueeze(1) - self.nodes.unsqueeze(0)
        return self.rel

    @property
    def size(self) -> int:
        return (self.nodes if self.rel is None else self.rel).shape[0]


class Affinity(nn.Module):
    """Base class: subclasses implement :meth:`relation` (one graph) or override :meth:`graphs`."""

    kind: ClassVar[str] = "sample"
    #: every entry is >= 0 (needed by the ``l1``/``mean`` normalisations and by ``kl``)
    nonnegative: bool = False
    #: number of virtual views this affinity reads (0: real view only)
    views: int = 0

    def relation(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def graphs(self, x: Tensor, nodes: Nodes) -> list[Graph]:
        if getattr(self, "edge_vectors", False):
            return [Graph("", None, self.kind, nodes=self.edge_nodes(x))]
        return [Graph("", self.relation(x), self.kind)]

    def edge_nodes(self, x: Tensor) -> Tensor:
        """For edge affinities: the node matrix whose pairwise differences are the edges."""
        raise NotImplementedError

    @property
    def graph_kinds(self) -> set[str]:
        return {self.kind}

    def forward(self, x: Tensor) -> Tensor:
        return self.relation(x)


def pairwise_sq_dists(x: Tensor) -> Tensor:
    """‖x_i − x_j‖² via the Gram identity ‖x_i‖² + ‖x_j‖² − 2 x_i·x_j, clamped at 0, returned in x's dtype.

    The identity subtracts nearly equal numbers for close rows, so it is evaluated in float64 (as
    RKD's reference ``pdist`` would need to be): in float32 two identical rows give a residue of
    ~1e-7·‖x‖² that depends on the CPU's kernels (AVX-512, AVX2, scalar), instead of 0, which then
    decides whether a clamp such as RKD's eps = 1e-12 applies.  In float64 the residue of identical
    rows is ~1e-16·‖x‖², below any such clamp, on every CPU.  Cost: one N×N float64 product.
    """
    xd = x.double()
    sq = xd.pow(2).sum(-1)
    return (sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * xd @ xd.t()).clamp_min(0.0).to(x.dtype)
