from __future__ import annotations

from torch import Tensor

from ._registry import AFFINITIES
from .base import Affinity


@AFFINITIES.register("identity", aliases=("instance",))
class Identity(Affinity):
    """The representation itself, A = X ∈ R^{N×D} (instance terms: CE, KD).

    Not a relation: each node's feature vector is matched with its counterpart.
    Relation axis = feature axis, so ``softmax`` turns logits into class probabilities.
    """

    kind = "instance"

    def relation(self, x: Tensor) -> Tensor:
        return x
