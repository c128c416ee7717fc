"""What a logger receives: a run's resolved config once at the start, then its metrics after every epoch.

A backend is one small file registering a :class:`Logger` subclass by name (``LOGGERS``); akd's own record,
``metrics.jsonl``, is written by the engine whatever the loggers are.  Backends with a dependency name it
(``module``/``package``) and import it only when used; :func:`require` turns a missing package into one line
with the pip command, checked when the config is validated, before any training.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from ..errors import ConfigError


class Logger:
    """One backend for one run folder.  Called on the writing process only (rank 0 under DDP)."""

    #: the module the backend imports and the pip package that provides it (None: no dependency)
    module: str | None = None
    package: str | None = None

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def start(self, config: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
        """The resolved config, and the epochs already recorded (a resumed run: what metrics.jsonl holds)."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """One finished epoch's metrics, flat (:func:`flat_metrics`)."""

    def close(self) -> None:
        """Flush and release (the run finished, failed or was interrupted)."""

    @classmethod
    def check(cls) -> None:
        """A ConfigError naming the pip install when the backend's package is missing (before any work)."""
        if cls.module:
            require(cls.module, cls.package)


def require(module: str, package: str | None) -> ModuleType:
    """``module`` imported, or a ConfigError: the package is missing (pip install it) or does not import."""
    package = package or module
    broken: ImportError
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or module == e.name or module.startswith(e.name + ".") or e.name == package:
            raise ConfigError(f"the {package} package is missing; pip install {package}") from None
        broken = e
    except ImportError as e:  # installed, but it does not import (a dependency's version, a partial install)
        broken = e
    raise ConfigError(f"the {package} package does not import ({type(broken).__name__}: {broken}); "
                      f"pip install -U {package}") from None


def flat_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """An epoch record (a metrics.jsonl line) as flat scalars: ``train: {ce: ...}`` becomes ``train/ce``."""
    out: dict[str, float] = {}
    for k, v in record.items():
        if isinstance(v, Mapping):
            out.update({f"{k}/{n}": x for n, x in v.items()})
        else:
            out[k] = v
    return out


def flat_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as scalars (lists, dicts and None as their JSON text) for backends whose parameters are flat."""
    import json

    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v, default=str) for k, v in config.items()}
