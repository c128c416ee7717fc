"""Experiment tracking: a run's config and per-epoch metrics sent to csv, tensorboard, wandb or mlflow (one file each).

The run-config key ``loggers`` (``akd run --logger csv,tensorboard``) lists logger specs (``"csv"``,
``"wandb(project='kd',mode='offline')"``); the engine opens them for every run folder it writes, next to
its own ``metrics.jsonl``.  :func:`check_loggers` runs when the config is validated, so an unknown name or a
missing package stops a run before any work.  A new backend = a file here registering a :class:`Logger`.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import AkdError, ConfigError
from ._registry import LOGGERS
from .base import Logger, flat_metrics
from . import csv_file, mlflow_run, tensorboard_events, wandb_run  # noqa: F401  (register the backends)


def check_loggers(specs: Sequence[Any]) -> None:
    """Every spec names a known logger with valid options, and its package is installed (else one line)."""
    for spec in specs:
        try:
            typing.cast("type[Logger]", LOGGERS.resolve(spec)[0].obj).check()
        except ConfigError as e:
            raise ConfigError(f"--logger {spec}: {e}") from None


class LoggerError(AkdError):
    """A logger backend failed (its own exception, e.g. a tracking server refusing the run), as one line."""


class Loggers:
    """The loggers of one run folder, called together: :meth:`start` once, :meth:`epoch` per finished epoch.

    A backend's own exception becomes a :class:`LoggerError` naming the logger (the run stops as failed, with its
    checkpoints, like any other error); the backends started before it are closed."""

    def __init__(self, specs: Sequence[Any], run_dir: str | Path):
        self.items: list[tuple[str, Logger]] = [(str(s), LOGGERS.build(s, Path(run_dir))) for s in specs]
        self.started: list[tuple[str, Logger]] = []

    def start(self, config: Mapping[str, Any], history: list[dict[str, Any]]) -> "Loggers":
        for spec, lg in self.items:
            try:
                self._call(spec, lg.start, config, history)
            except LoggerError:
                self.close()
                raise
            self.started.append((spec, lg))
        return self

    def epoch(self, record: Mapping[str, Any]) -> None:
        """One metrics.jsonl record, flattened for the backends."""
        flat = flat_metrics(record)
        for spec, lg in self.started:
            self._call(spec, lg.log_epoch, int(record["epoch"]), flat)

    def close(self) -> None:
        started, self.started = self.started, []
        for spec, lg in started:
            self._call(spec, lg.close)

    @staticmethod
    def _call(spec: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except AkdError:
            raise
        except Exception as e:  # a third-party backend's failure, whatever its type
            raise LoggerError(f"--logger {spec} failed: {type(e).__name__}: {e}") from e


__all__ = ["LOGGERS", "Logger", "LoggerError", "Loggers", "check_loggers", "flat_metrics"]
