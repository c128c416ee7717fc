"""Weight schedules of objective terms (one file each): factor(epoch) multiplying a term's weight.

A term's ``schedule`` key (``"constant"``, ``"linear-warmup(epochs=20)"``, ``"step(milestones=[150,180],gamma=0.1)"``)
is a registry spec, validated when the objective is built.  The engine calls
:meth:`akd.objective.Objective.set_epoch` at the start of every epoch; the factor is a pure function of the
(0-based) epoch index, so a resumed run applies exactly the factor the uninterrupted run applied.
"""

from ._registry import SCHEDULES
from .base import WeightSchedule
from . import constant, linear_warmup, step  # noqa: F401

__all__ = ["SCHEDULES", "WeightSchedule"]
