from __future__ import annotations

from ._registry import SCHEDULES
from .base import WeightSchedule


@SCHEDULES.register("constant", aliases=("none",))
class Constant(WeightSchedule):
    """Constant weight: factor(e) = 1 for every epoch e (the default of every term)."""

    constant = True

    def __call__(self, epoch: int) -> float:
        return 1.0
