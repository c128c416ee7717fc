"""Edge-vector graphs matched without materialising them (Gram-matrix identities).

An edge graph over nodes X ∈ R^{N×D} is E[i, j] = x_i − x_j ∈ R^D, i.e. N²·D numbers
(VRM's inter-sample graph over 2B = 512 nodes with C = 1000 classes: 262M floats, 1 GB
in fp32, per side, plus autograd buffers).  When the normalisation is ``none``, ``l2`` or
``zs`` and the loss is ``mse``, the matched value only needs pairwise inner products, so
it is evaluated from three N×N Gram matrices in O(N² + N·D) memory:

    G^s = X̃_s X̃_sᵀ,  G^t = X̃_t X̃_tᵀ,  H = X̃_s X̃_tᵀ
    ‖e^s_ij‖² = G^s_ii + G^s_jj − 2 G^s_ij,      ⟨e^s_ij, e^t_ij⟩ = H_ii + H_jj − H_ij − H_ji

with X̃ = X for ``none``/``l2`` and X̃ = X − rowmean(X) for ``zs`` (the mean of an edge
vector is the difference of the node means, so centring the nodes centres every edge).
Then, per pair (i, j), with a = ‖e^s‖², b = ‖e^t‖², c = ⟨e^s, e^t⟩:

* none: ‖e^s − e^t‖² = a + b − 2c
* l2:   ‖ê^s − ê^t‖² = a/m_s² + b/m_t² − 2c/(m_s m_t),  m = √max(‖e‖², eps²) = max(‖e‖, eps)
  (eps² is floored at 1e-20 so that zero edges keep moderate gradients; this differs from
  ``F.normalize`` only for edges shorter than 1e-10)
* zs:   ‖z^s − z^t‖² = a/v_s + b/v_t − 2c/√(v_s v_t),   v = ‖ẽ‖²/D + eps  (population variance)

and mse = mean over kept pairs of that value / D (``reduction='edge'``: without / D; ``edge-huber``: the
Huber function of its square root) — the same number the materialised path computes (up to float rounding; the tests compare both).  Squared norms are clamped at 0, and
the Gram matrices are computed in float64 (the identities subtract large, nearly equal numbers;
in fp32 an edge between near-duplicate nodes, e.g. a virtual view that barely differs from its
real view, would lose most of its digits; the N×N fp64 products cost O(N²·D) flops and
O(N²) memory).  An edge whose squared norm is below ``ZERO_EDGE`` (1e-12) × (‖x_i‖² + ‖x_j‖²)
is at the resolution of fp32 inputs and is taken as an exact zero edge (normalised to 0, zero
gradient), as the materialised path does for exact duplicates.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..losses.base import masked_mean

_ENABLED = True


def set_enabled(flag: bool) -> bool:
    """Switch the closed form on/off globally (benchmarks and tests compare both); returns the old value."""
    global _ENABLED
    old, _ENABLED = _ENABLED, bool(flag)
    return old


def enabled() -> bool:
    return _ENABLED


def _norm_kind(norm) -> str | None:
    from ..normalization.l2 import L2
    from ..normalization.none import NoNorm
    from ..normalization.zs import ZScore

    for cls, kind in ((NoNorm, "none"), (L2, "l2"), (ZScore, "zs")):
        if type(norm) is cls:
            return kind
    return None


def supports(norm, loss) -> bool:
    """True when (norm, loss) has the closed form above: norm none/l2/zs and a loss that is a function of
    each edge's squared distance (it implements :meth:`akd.losses.base.MatchLoss.edge_reduce`: mse, edge-huber)."""
    from ..losses.base import MatchLoss

    return _ENABLED and type(loss).edge_reduce is not MatchLoss.edge_reduce and _norm_kind(norm) is not None


#: squared edge norms below ZERO_EDGE · (‖x_i‖² + ‖x_j‖²) are below the resolution of the (fp64)
#: Gram identity (cancellation) and are treated as exact zero edges (value 0, gradient 0)
ZERO_EDGE = 1e-12


def _sq_edges(g: Tensor) -> tuple[Tensor, Tensor]:
    d = g.diagonal()
    scale = d.unsqueeze(1) + d.unsqueeze(0)
    a = (scale - 2.0 * g).clamp_min(0.0)
    zero = a <= ZERO_EDGE * scale
    return torch.where(zero, torch.zeros_like(a), a), zero


def _pair_terms(xs: Tensor, xt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    h = xs @ xt.t()
    a, zs = _sq_edges(xs @ xs.t())
    b, zt = _sq_edges(xt @ xt.t())
    dh = h.diagonal()
    c = dh.unsqueeze(1) + dh.unsqueeze(0) - h - h.t()
    c = torch.where(zs | zt, torch.zeros_like(c), c)  # <0, e> = 0 exactly
    return a, b, c


def pair_sq(xs: Tensor, xt: Tensor, norm) -> Tensor:
    """sq[i, j] = ‖N(x^s_i − x^s_j) − N(x^t_i − x^t_j)‖² for every pair, in float64, without the [N, N, D] tensors."""
    kind = _norm_kind(norm)
    d = xs.shape[1]
    xs, xt = xs.double(), xt.double()  # the identities cancel: fp64 keeps near-duplicate edges exact
    if kind == "zs":
        xs = xs - xs.mean(dim=1, keepdim=True)
        xt = xt - xt.mean(dim=1, keepdim=True)
    a, b, c = _pair_terms(xs, xt)
    if kind == "none":
        sq = a + b - 2.0 * c
    elif kind == "l2":
        e2 = max(norm.eps**2, 1e-20)  # keeps 1/m² well inside range for zero edges (the diagonal)
        ms, mt = a.clamp_min(e2), b.clamp_min(e2)
        sq = a / ms + b / mt - 2.0 * c * ms.rsqrt() * mt.rsqrt()
    else:
        vs, vt = a / d + norm.eps, b / d + norm.eps
        sq = a / vs + b / vt - 2.0 * c * (vs * vt).rsqrt()
    return sq.clamp_min(0.0)


def edge_mse(xs: Tensor, xt: Tensor, norm, mask: Tensor | None) -> Tensor:
    """mse (element reduction) between N(x^s_i − x^s_j) and N(x^t_i − x^t_j) over kept pairs, in closed form."""
    return (masked_mean(pair_sq(xs, xt, norm), mask) / xs.shape[1]).to(xs.dtype)
