"""Errors akd raises for problems a user can fix.

Every :class:`AkdError` is a *user* error: the CLI prints its one-line message
and exits with its ``exit_code`` (no traceback unless ``--debug``): 2 for bad input, 3 for a
run that diverged (:class:`TrainingDiverged`), 130 for an interrupted run.  Programming errors stay
ordinary Python exceptions.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class AkdError(Exception):
    """Base class of user-facing errors (exit code 2 on the CLI).

    ``str(e)`` is phrased for Python callers (keyword arguments such as ``resume=True``); where the advice
    differs on the command line, ``cli`` holds the same message phrased with the flags (``--resume``), which
    the CLI prints instead (:attr:`cli_message`).
    """

    exit_code = 2

    def __init__(self, *args: object, cli: str | None = None):
        super().__init__(*args)
        self.cli = cli

    def __reduce__(self):  # keep ``cli`` when the error crosses a process boundary (grid workers, Ray)
        return _rebuild, (type(self), self.args, self.cli)

    @property
    def cli_message(self) -> str:
        """The message the command line shows: ``cli`` when given, else the API message."""
        return self.cli if self.cli is not None else str(self)


def _rebuild(cls: type[AkdError], args: tuple, cli: str | None) -> AkdError:
    e = cls(*args)
    e.cli = cli
    return e


class ConfigError(AkdError, ValueError):
    """A name, parameter, combination or config value is invalid."""


class DataError(AkdError):
    """A data set is missing, truncated or fails its checksum."""


class CheckpointError(AkdError):
    """A checkpoint is missing, truncated, corrupt or does not match."""


class TrainingDiverged(AkdError):
    """A loss term became NaN/inf; the run stopped and kept its last good checkpoint (CLI exit code 3)."""

    exit_code = 3


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``value`` (difflib ratio), or None."""
    m = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return m[0] if m else None


def closest_first(value: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """``choices`` with the (up to ``n``) closest to ``value`` first, the others in their order: a list of valid
    keys a reader scans for the one they meant."""
    choices = list(choices)
    near = difflib.get_close_matches(str(value), choices, n=n, cutoff=0.5)
    return near + [c for c in choices if c not in near]


def unknown(kind: str, value: str, choices: Iterable[str]) -> ConfigError:
    """A ConfigError for an unknown name: names the value, the choices and the closest match."""
    choices = sorted(choices)
    near = closest(value, choices)
    hint = f" (did you mean '{near}'?)" if near else ""
    return ConfigError(f"unknown {kind} '{value}'{hint}; valid choices: {', '.join(choices)}")
