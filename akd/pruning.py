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

Masks are bool tensors over the first two axes of a graph; no host synchronisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .affinity.base import Nodes

REDUNDANT = ("none", "symmetric", "cross-view", "both")
QUANTILE_MAX = 2**24
UNRELIABLE = ("none", "joint-entropy")


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
    flat = off_diagonal.flatten()
    if flat.numel() <= QUANTILE_MAX:
        thr = torch.quantile(flat, q)
    else:  # torch.quantile refuses > 2^24 entries (B > 2048 with one virtual view): order statistic instead
        thr = flat.kthvalue(max(1, math.ceil(q * flat.numel()))).values
    return j <= thr
