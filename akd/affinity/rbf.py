from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ._registry import AFFINITIES
from .base import Affinity


@AFFINITIES.register("rbf", aliases=("gaussian",))
class RBF(Affinity):
    """Gaussian kernel k(x_i, x_j) = exp(−γ‖x̂_i − x̂_j‖²) on L2-normalised rows x̂.

    Since ‖x̂_i − x̂_j‖² = 2 − 2c with c = x̂_i·x̂_j, k = e^{−2γ} e^{2γc}, evaluated by the
    P-order Taylor expansion  Σ_{p=0..P} e^{−2γ} (2γ)^p / p! · c^p.
    Source: Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019 (CC),
    defaults γ = 0.4, P = 2.  ``order=None`` evaluates the exact kernel.  Rows are normalised
    with F.normalize (eps 1e-12).  Non-negative for the exact kernel and every even order.
    """

    def __init__(self, gamma: float = 0.4, order: int | None = 2):
        super().__init__()
        require(gamma > 0, f"rbf: gamma={gamma} must be > 0")
        require(order is None or order >= 0, f"rbf: order={order} must be >= 0 or None (exact kernel)")
        self.gamma, self.order = gamma, order
        self.nonnegative = order is None or order % 2 == 0

    def relation(self, x: Tensor) -> Tensor:
        xh = F.normalize(x, p=2, dim=-1)
        c = xh @ xh.t()
        if self.order is None:
            return (2.0 * self.gamma * (c - 1.0)).exp()
        out = c.new_zeros(c.shape)
        base = math.exp(-2.0 * self.gamma)
        power = c.new_ones(c.shape)
        for p in range(self.order + 1):
            out = out + base * (2.0 * self.gamma) ** p / math.factorial(p) * power
            power = power * c
        return out
