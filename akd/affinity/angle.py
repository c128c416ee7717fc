from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._registry import AFFINITIES
from .base import Affinity


@AFFINITIES.register("angle")
class Angle(Affinity):
    """Triplet angles A_ijk = ⟨e_ij, e_ik⟩, e_ij = (x_j − x_i) / max(‖x_j − x_i‖₂, 1e-12) → [N, N, N].

    Source: Park et al., "Relational Knowledge Distillation", CVPR 2019 (RKD-A): the cosine of
    the angle at apex i between j and k.  Degenerate differences (j = i) give e = 0.
    Memory O(N²·D + N³).
    """

    kind = "triplet"

    def relation(self, x: Tensor) -> Tensor:
        e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)  # e[i, j] = x_j - x_i
        return e @ e.transpose(1, 2)
