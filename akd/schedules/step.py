from __future__ import annotations

from ..registry import require
from ._registry import SCHEDULES
from .base import WeightSchedule


@SCHEDULES.register("step")
class Step(WeightSchedule):
    """Step schedule: factor(e) = gamma^k, k = number of milestones m with m <= e (0-based epoch e).

    Same convention as the learning-rate milestones (``MultiStepLR``): with ``milestones=[150]`` the first 150
    epochs use the full weight and epoch 151 (1-based) on uses gamma times it.  ``gamma = 0`` switches a term
    off after its first milestone.
    """

    def __init__(self, milestones: list | None = None, gamma: float = 0.1):
        require(bool(milestones), f"step: give milestones=[e1, e2, ...] (epochs >= 1), got {milestones!r}")
        require(all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in milestones),
                f"step: milestones={milestones!r} must be epochs >= 1 (integers)")
        require(list(milestones) == sorted(set(milestones)), f"step: milestones={milestones!r} must be increasing")
        require(gamma >= 0, f"step: gamma={gamma} must be >= 0")
        self.milestones, self.gamma = list(milestones), gamma

    def __call__(self, epoch: int) -> float:
        return self.gamma ** sum(1 for m in self.milestones if m <= epoch)
