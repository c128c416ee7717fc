"""A dependency-free progress display: one refreshing line on a terminal, periodic lines otherwise.

:class:`Progress` is training's display (a line every ``log_every`` steps when stderr is not a terminal).
:class:`Stage` shows long work outside training — data downloads, teacher-cache builds, evaluation of large sets —
as a refreshing bar on a terminal and as at most one line otherwise.  Code that cannot be handed a ``progress``
flag (a data set's download deep inside its loader) reads :func:`display_on`, which the command line
(``--quiet``) and the engine (``progress=False``, ranks other than 0) set for their scope with :func:`display`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    h, r = divmod(s, 3600)
    m, s = divmod(r, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(self, total_steps: int, label: str = "", stream=None, enabled: bool = True):
        self.total = max(1, total_steps)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.done0 = 0
        self._last_len = 0

    def start(self, done: int) -> None:
        self.t0 = time.perf_counter()
        self.done0 = done

    def update(self, done: int, text: str, images: int | None = None) -> None:
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        rate = (done - self.done0) / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        ips = f" {images / el:,.0f} img/s" if images and el > 0 else ""
        line = f"{self.label} {100 * done / self.total:5.1f}% {text}{ips} ETA {fmt_time(eta)}"
        if self.tty:
            pad = max(0, self._last_len - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._last_len = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        self.erase()
        self.stream.write(text + "\n")
        self.stream.flush()

    def erase(self) -> None:
        """Clear the refreshing line (a terminal), so that what is written next starts on a clean line."""
        if self.enabled and self.tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self.stream.flush()
            self._last_len = 0

    def close(self) -> None:
        if self.enabled and self.tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0


_DISPLAY = [True]


@contextlib.contextmanager
def display(on: bool) -> Iterator[None]:
    """Within the block, :class:`Stage` shows progress (``on``) or nothing (``--quiet``)."""
    was = _DISPLAY[0]
    _DISPLAY[0] = on
    try:
        yield
    finally:
        _DISPLAY[0] = was


def display_on() -> bool:
    return _DISPLAY[0]


class Stage:
    """Progress of one long non-training stage, written to stderr.

    On a terminal: a refreshing bar (``title  42.0% 12/29 MiB ETA 00:03``), kept when done, or erased when
    ``transient`` (an evaluation inside training, whose epoch line follows).  Elsewhere: ``title`` once as the
    stage's one line (``line=False``: nothing).  Nothing at all when the display is off (``enabled`` or, when it
    is None, :func:`display_on`).  ``delay``: seconds before the bar appears (quick stages draw nothing).  ``total`` 0
    (a size not known in advance): the line, also on a terminal."""

    def __init__(self, title: str, total: float, *, unit: str = "", scale: float = 1.0, stream=None,
                 enabled: bool | None = None, transient: bool = False, line: bool = True, delay: float = 0.0):
        self.title, self.total, self.unit, self.scale = title, total, unit, scale
        self.stream = stream or sys.stderr
        self.on = display_on() if enabled is None else enabled
        self.tty = self.on and total > 0 and hasattr(self.stream, "isatty") and self.stream.isatty()  # size unknown: the line
        self.transient, self.delay = transient, delay
        self.bar = Progress(int(total) or 1, label=title, stream=self.stream, enabled=self.tty)
        self.done, self.t0, self.shown = 0.0, time.perf_counter(), 0.0
        if self.on and not self.tty and line:
            self.stream.write(title + "\n")
            self.stream.flush()

    def advance(self, n: float = 1) -> None:
        """``n`` more units done; the bar redraws at most ten times a second (and when the stage completes)."""
        self.done += n
        now = time.perf_counter()
        if not self.tty or now - self.t0 < self.delay or (now - self.shown < 0.1 and self.done < self.total):
            return
        self.shown = now
        unit = f" {self.unit}" if self.unit else ""
        self.bar.update(int(self.done), f"{self.done / self.scale:,.0f}/{self.total / self.scale:,.0f}{unit}")

    def close(self) -> None:
        if self.transient:
            self.bar.erase()
        else:
            self.bar.close()

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
