"""akd: relation-based (affinity) knowledge distillation.

Every relational objective = affinity × normalisation × matching loss (Li & Maki); VRM,
RKD, CC, SP, PKT, KD and CE are presets (combinations) run through one engine.

``import akd`` is light: the torch-backed names below (registries, :func:`build_objective`,
:func:`virtual_views`, …) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import AkdError, ConfigError

__version__ = "0.1.0"  # the one version source (setup.cfg reads it: version = attr: akd.__version__)

_LAZY = {
    "AFFINITIES": ".affinity", "NORMALIZATIONS": ".normalization", "LOSSES": ".losses", "METHODS": ".methods",
    "Registry": ".registry", "Objective": ".objective", "Term": ".objective", "build_objective": ".objective",
    "virtual_views": ".views",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time these load lazily (__getattr__)
    from .affinity import AFFINITIES
    from .losses import LOSSES
    from .methods import METHODS
    from .normalization import NORMALIZATIONS
    from .objective import Objective, Term, build_objective
    from .registry import Registry
    from .views import virtual_views


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'akd' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AFFINITIES", "NORMALIZATIONS", "LOSSES", "METHODS", "Registry", "Objective", "Term",
    "build_objective", "virtual_views", "AkdError", "ConfigError", "__version__",
]
