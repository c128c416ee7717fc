from __future__ import annotations

from torch import Tensor

from ._registry import AFFINITIES
from .base import Affinity


@AFFINITIES.register("class-identity", aliases=("identity-t",))
class ClassIdentity(Affinity):
    """The representation transposed, A = Xᵀ ∈ R^{C×N} for X ∈ R^{N×C}: the class-axis orientation of ``identity``.

    Row a is class a's column of the batch (its score, or probability after ``pre = "softmax(t)"``, on every
    node), so a row-wise loss compares how each class varies *across the batch*.  Source: DIST's
    intra-class relation (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022), which
    matches ``y_s.transpose(0, 1)`` against ``y_t.transpose(0, 1)``.  Not a pairwise graph (kind ``instance``:
    no pruning); relation axis = the N nodes.  With ``pre`` the pre-normalisation acts on X's rows (per
    sample, over classes) *before* the transpose.
    """

    kind = "instance"

    def relation(self, x: Tensor) -> Tensor:
        return x.t()
