"""SIGINT/SIGTERM during training: a graceful stop, bounded in time, and a second signal that aborts.

* The **first** SIGINT or SIGTERM sets :attr:`StopFlag.requested`; the loop finishes the current step,
  writes a checkpoint, marks the run ``interrupted`` and leaves with exit code 130 (``--resume`` continues).
* A **second** SIGINT or SIGTERM ends the process at once (exit code 130).
* A graceful stop that has not finished ``grace`` seconds after the first signal (default 60 s,
  ``$AKD_STOP_GRACE``) also ends the process (exit code 130): a step that never ends (e.g. an
  objective far too large for the machine) cannot keep a run alive against ``timeout`` or a scheduler.

Nothing finished is lost by an abort: checkpoints, summaries and results are written atomically, so the
previous checkpoint stays intact and ``--resume`` continues from it.

Python runs signal handlers only between bytecodes of the main thread, so a handler cannot act while the
main thread sits in one long native operation.  The abort therefore does not rely on it: the C-level
handler writes each signal to a wakeup socket (:func:`signal.set_wakeup_fd`) that a watcher thread reads;
torch releases the GIL inside its operations, so the watcher runs while the step is stuck.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from typing import Any

#: exit code of an interrupted or aborted run (128 + SIGINT, the shell convention)
EXIT_INTERRUPTED = 130
#: default bound (s) on a graceful stop; ``$AKD_STOP_GRACE`` overrides it
DEFAULT_GRACE_S = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def grace_seconds() -> float:
    """The bound on a graceful stop: ``$AKD_STOP_GRACE`` (seconds, > 0) or :data:`DEFAULT_GRACE_S`."""
    raw = os.environ.get("AKD_STOP_GRACE")
    try:
        value = float(raw) if raw else DEFAULT_GRACE_S
    except ValueError:
        value = DEFAULT_GRACE_S
    return value if value > 0 else DEFAULT_GRACE_S


def _abort(why: str) -> None:
    """Leave now, from any thread: one line on stderr, exit code 130, no Python teardown."""
    try:
        os.write(2, f"\nerror: {why}; stopped without a new checkpoint (resume continues from the last one)\n".encode())
    finally:
        os._exit(EXIT_INTERRUPTED)


class StopFlag:
    """Context manager: installs the handlers (main thread only) and the watcher; see the module doc."""

    def __init__(self, grace: float | None = None):
        self.requested: str | None = None
        self.grace = grace_seconds() if grace is None else grace
        self._old: dict[int, Any] = {}
        self._old_fd: int | None = None
        self._socks: tuple[socket.socket, socket.socket] | None = None
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals are delivered to the main thread only: nothing to install here
        for sig in STOP_SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        try:
            r, w = socket.socketpair()
            r.settimeout(0.2)
            w.setblocking(False)
            self._old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        except (OSError, ValueError):  # pragma: no cover - no wakeup fd: the graceful stop still works
            return self
        self._socks = (r, w)
        self._watcher = threading.Thread(target=self._watch, name="akd-stop-watcher", daemon=True)
        self._watcher.start()
        return self

    def _handle(self, signum, frame):
        if self.requested is None:
            self.requested = signal.Signals(signum).name

    def _watch(self) -> None:
        r = self._socks[0]
        count, deadline = 0, None
        while not self._done.is_set():
            try:
                data = r.recv(64)
            except socket.timeout:
                data = b""
            except OSError:
                return
            count += sum(1 for b in data if b in STOP_SIGNALS)
            if count >= 2:
                _abort("a second stop signal: aborted at once")
            if count == 1 and deadline is None:
                deadline = time.monotonic() + self.grace
            if deadline is not None and time.monotonic() > deadline and not self._done.is_set():
                _abort(f"the graceful stop took longer than {self.grace:g} s (AKD_STOP_GRACE)")

    def __exit__(self, *exc):
        self._done.set()
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._socks is not None:
            signal.set_wakeup_fd(self._old_fd if self._old_fd is not None else -1)
            if self._watcher is not None:
                self._watcher.join(timeout=1.0)
            for s in self._socks:
                s.close()
        sys.stderr.flush()
        return False
