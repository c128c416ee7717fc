from __future__ import annotations

from ..registry import require
from ._registry import SCHEDULES
from .base import WeightSchedule


@SCHEDULES.register("linear-warmup", aliases=("warmup",))
class LinearWarmup(WeightSchedule):
    """Linear warm-up: factor(e) = min((e + 1) / epochs, 1) for the 0-based epoch e.

    The first epoch trains with 1/epochs of the weight, epoch ``epochs`` (1-based) and later with all of it.
    Source: mdistiller's DKD (Zhao et al., CVPR 2022), ``min(epoch / WARMUP, 1.0)`` with its 1-based epoch and
    ``WARMUP = 20``: the same factors.
    """

    def __init__(self, epochs: int = 20):
        require(epochs >= 1, f"linear-warmup: epochs={epochs} must be >= 1")
        self.epochs = epochs

    def __call__(self, epoch: int) -> float:
        return min((epoch + 1) / self.epochs, 1.0)
