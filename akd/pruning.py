"""Edge pruning for pairwise graphs (VRM's "dynamic detaching of redundant and unreliable edges").

VRM (Zhang et al., ICCV 2025) prunes its graphs but does not publish the exact rules; these
are akd's named options, each a documented choice:

Redundant edges (a fixed mask over node pairs (i, j), or class pairs (a, b)):

* ``none``: keep every pair, including the zero self-edges i = j.
* ``symmetric``: keep i < j.  E[j, i] = −E[i, j] carries no new information (and is
  matched identically by mse/l1/zs), so this halves the graph and drops the self-edges.
* ``cross-view``: (inter-sample graphs only) keep only real–virtual pairs, i.e. edges
  between a real view and a virtual view (incl. the inter-view edge of the same image).
  Needs virtual views.  Inter-class graphs are left unpruned by this rule.
* ``both``: symmetric ∧ cross-view.

Unreliable edges (recomputed every step from the student's detached predictions):

* ``none``
* ``joint-entropy``: with p_i = softmax(student logits_i) (detached) and
  H_i = −Σ_c p_ic log p_ic, pair (i, j) is detached (excluded from the loss, no gradient)
  when H_i + H_j exceeds the ``quantile``-q of {H_i + H_j : i ≠ j} over the batch
  (``torch.quantile``, linear interpolation; above 2^24 pairs, which torch.quantile refuses, the
  ⌈q·M⌉-th smallest value; default q = 0.9, i.e. the 10 % least confident pairs are dropped).  Applies to inter-sample (``sample``) graphs only.

* ``discrepancy``: with d_ij = ‖N(e^s_ij) − N(e^t_ij)‖₂, the distance between the student's and the
  teacher's normalised edge vectors (detached), edge (i, j) is detached when d_ij exceeds the
  ``quantile``-q of {d_ij} over the candidate edges (those the redundant rule keeps, self-edges
  excluded), recomputed every step.  q = 1 keeps every edge (equals no pruning).  The reading of the
  VRM paper in which an edge whose two predictions disagree most is the least reliable (a reader's note
  of the paper: vertex-certainty criteria are rejected as biased towards easy samples).  Edge-vector
  graphs only.
* ``threshold``: the fixed-threshold form: edge (i, j) is detached when d_ij > ``delta`` (in the same
  units: for L2-normalised edges d ∈ [0, 2]).  With ``edge-huber`` this is a truncated Huber loss.

``unreliable_graphs`` says which graphs the unreliable rule prunes: ``sample`` (inter-sample graphs
only, the default) or ``all`` (inter-class graphs too; not with ``joint-entropy``, which is defined by
the nodes' predictions).

Masks are bool tensors over the first two axes of a graph; no host synchronisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .affinity.base import Nodes

REDUNDANT = ("none", "symmetric", "cross-view", "both")
QUANTILE_MAX = 2**24
UNRELIABLE = ("none", "joint-entropy", "discrepancy", "threshold")
UNRELIABLE_GRAPHS = ("sample", "all")
#: unreliable rules that read the distance between the matched edges (edge-vector graphs only)
BY_DISTANCE = ("discrepancy", "threshold")


def redundant_mask(kind: str, size: int, nodes: Nodes, mode: str, device) -> Tensor | None:
    """Fixed mask of kept pairs for ``mode`` (see module doc), or None when nothing is pruned."""
    if mode == "none" or kind not in ("sample", "class"):
        return None
    mask = None
    if mode in ("symmetric", "both"):
        mask = torch.ones(size, size, dtype=torch.bool, device=device).triu(1)
    if mode in ("cross-view", "both") and kind == "sample":
        real = torch.arange(size, device=device) < nodes.batch  # rows [0, B) are the real views
        cv = real.unsqueeze(1) ^ real.unsqueeze(0)
        mask = cv if mask is None else mask & cv
    return mask


def _quantile(flat: Tensor, q: float) -> Tensor:
    """``torch.quantile`` (linear interpolation), or the ⌈q·M⌉-th smallest value above 2^24 entries (which it refuses)."""
    if flat.numel() <= QUANTILE_MAX:
        return torch.quantile(flat, q)
    return flat.kthvalue(max(1, math.ceil(q * flat.numel()))).values


def candidate_index(redundant: Tensor | None, size: int, device) -> Tensor:
    """Flat indices of the edges an unreliable rule ranks: kept by the redundant mask, self-edges excluded.

    Computed once per graph layout (the caller caches it), so the per-step quantile gathers with a fixed
    index instead of boolean indexing (which would synchronise with the host)."""
    keep = ~torch.eye(size, dtype=torch.bool, device=device)
    if redundant is not None:
        keep = keep & redundant
    return keep.flatten().nonzero().squeeze(1)


def discrepancy_mask(sq: Tensor, candidates: Tensor, q: float) -> Tensor:
    """Keep edge (i, j) iff d_ij ≤ quantile_q{d over the candidate edges}, d = √sq (detached)."""
    d = sq.detach().sqrt()
    thr = _quantile(d.flatten().index_select(0, candidates), q)
    return d <= thr


def threshold_mask(sq: Tensor, delta: float) -> Tensor:
    """Keep edge (i, j) iff d_ij = √sq_ij ≤ delta (detached)."""
    return sq.detach().sqrt() <= delta


def joint_entropy_mask(logits: Tensor, q: float) -> Tensor:
    """Keep pair (i, j) iff H_i + H_j ≤ quantile_q{H_i + H_j : i ≠ j} (student predictions, detached)."""
    logp = logits.detach()
    logp = (logp if logp.dtype == torch.float64 else logp.float()).log_softmax(dim=-1)
    h = -(logp.exp() * logp).sum(dim=-1)
    j = h.unsqueeze(1) + h.unsqueeze(0)
    n = j.shape[0]
    if n < 2:  # a single node has no pairs to prune
        return torch.ones_like(j, dtype=torch.bool)
    off_diagonal = j.flatten()[1:].view(n - 1, n + 1)[:, :-1]  # the n(n-1) entries i != j, no host sync
    return j <= _quantile(off_diagonal.flatten(), q)
