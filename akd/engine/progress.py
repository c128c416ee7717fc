"""A dependency-free progress display: one refreshing line on a terminal, periodic lines otherwise."""

from __future__ import annotations

import sys
import time


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
        if self.tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0
