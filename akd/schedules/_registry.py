"""The ``schedule`` registry, in a leaf module: the parts import it, and nothing here imports the parts."""

from ..registry import Registry

SCHEDULES = Registry("schedule")
