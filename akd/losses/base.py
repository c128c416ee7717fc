"""Contract of matching losses.

``loss(s, t, mask=None, targets=None) -> scalar`` compares the student relation ``s``
with the teacher relation ``t`` (same shape; relation axis last).

Masks (pruned edges): an optional bool tensor over the **first two axes** of the relation
(node or class pairs), or of the relation's full shape.  Element-wise losses average over
the kept elements only; row-wise losses (``kl``, ``cosine``) average over kept rows.  A
masked-out entry contributes neither value nor gradient (``torch.where``, so even a NaN in
a pruned entry cannot leak).  An all-pruned mask gives 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)


def kept(x: Tensor, mask: Tensor | None, fill: float = 0.0) -> Tensor:
    """``x`` with pruned entries replaced by the constant ``fill`` *before* any arithmetic, so that
    neither a value nor a gradient (not even a NaN) can flow from a pruned entry."""
    if mask is None:
        return x
    return torch.where(_expand(mask, x), x, x.new_full((), fill))


def masked_mean(elem: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``elem`` over entries where ``mask`` (broadcast over trailing axes) is True."""
    if mask is None:
        return elem.mean()
    m = _expand(mask, elem)
    return torch.where(m, elem, elem.new_zeros(())).sum() / m.sum().clamp_min(1)


def masked_sum(elem: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | float]:
    """(Σ kept entries of ``elem``, number of kept positions of the mask's own shape)."""
    if mask is None:
        return elem.sum(), float(elem.shape[0] * (elem.shape[1] if elem.dim() > 1 else 1))
    m = _expand(mask, elem)
    return torch.where(m, elem, elem.new_zeros(())).sum(), mask.sum().to(elem.dtype).clamp_min(1)


class MatchLoss(nn.Module):
    #: element-wise (masks may address entries); False: row-wise over the relation axis
    elementwise: bool = True
    #: needs probability rows (softmax / l1 normalisation)
    needs_probabilities: bool = False
    #: reads the labels
    needs_targets: bool = False
    #: reads the teacher
    uses_teacher: bool = True
    #: instance term: reads raw logits rows (affinity identity, norm none)
    instance: bool = False

    #: compares whole edge vectors (needs an edge-vector affinity; see :meth:`edge_reduce`)
    needs_edge_vectors: bool = False

    def forward(self, s: Tensor, t: Tensor | None, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def edge_reduce(self, sq: Tensor, mask: Tensor | None, dim: int) -> Tensor | None:
        """This loss on an edge graph from each edge's squared distance ``sq[i, j] = ‖N(e^s_ij) − N(e^t_ij)‖²``
        (``dim`` = length of the edge vectors), or None when the loss is not a function of that distance.

        Losses that implement it are matched in closed form on edge graphs (:mod:`akd.affinity._edge_gram`),
        in O(N²) memory instead of materialising the [N, N, dim] graphs; the value equals :meth:`forward` on
        the materialised graphs (tested)."""
        return None
