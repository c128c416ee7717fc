from __future__ import annotations

import torch
from torch import Tensor

from ..registry import require
from ._registry import LOSSES
from .base import MatchLoss, kept


def _constant(x: Tensor, centred: Tensor) -> Tensor:
    """Rows of ``x`` that are constant up to rounding (their centred entries are all <= 8 ulp of the row's max |x|)."""
    tol = 8 * torch.finfo(x.dtype).eps
    return centred.abs().amax(dim=-1) <= tol * x.abs().amax(dim=-1)


@LOSSES.register("pearson", aliases=("pearson-distance",))
class PearsonLoss(MatchLoss):
    """Pearson distance L = scale · mean_kept (1 − ρ(s_i, t_i)) over rows (relation axis = last axis).

    ρ(a, b) = ⟨a − ā, b − b̄⟩ / (‖a − ā‖₂ · ‖b − b̄‖₂ + eps), ā = the row mean, eps = 1e-8 added to the product of
    the norms (not a clamp), so a constant row gives ρ = 0 (contribution ``scale``), as in the reference code,
    except that a student row and a teacher row that are *both* constant (up to rounding: centred entries within
    8 ulp of the row's magnitude, e.g. softmax of equal logits) count as matched (0), as in ``cosine``; the
    reference gives 1 there, with zero gradient either way.  Reduction: mean over the (kept) rows; all other
    leading axes are rows too.

    Source: DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022; official
    ``dist_kd.py``: ``1 − pearson_correlation(y_s, y_t).mean()`` with the same eps, times τ²).  DIST's
    inter-class relation is ``pre = "softmax(t=4)"`` / ``identity`` / ``pearson(scale=16)``, its intra-class
    relation the same with ``class-identity``; ``scale`` carries the τ² factor.
    """

    elementwise = False

    def __init__(self, scale: float = 1.0, eps: float = 1e-8):
        super().__init__()
        require(scale > 0, f"pearson: scale={scale} must be > 0")
        require(eps >= 0, f"pearson: eps={eps} must be >= 0")
        self.scale, self.eps = scale, eps

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        s, t = kept(s, mask, 0.0), kept(t, mask, 0.0)
        cs = s - s.mean(dim=-1, keepdim=True)
        ct = t - t.mean(dim=-1, keepdim=True)
        rho = (cs * ct).sum(dim=-1) / (cs.norm(dim=-1) * ct.norm(dim=-1) + self.eps)
        # two numerically constant rows (centred entries within 8 ulp of the row's magnitude) count as matched
        rows = torch.where(_constant(s, cs) & _constant(t, ct), rho.new_zeros(()), 1.0 - rho)
        if mask is None:
            return self.scale * rows.mean()
        return self.scale * rows.where(mask, rows.new_zeros(())).sum() / mask.sum().clamp_min(1)
