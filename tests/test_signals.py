"""Stop signals: a step that never ends cannot keep a run alive (second signal, bounded graceful stop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a "step" that never ends: native torch work in a loop that never looks at the stop flag
STUCK = """
import sys, torch
from akd.engine.signals import StopFlag
with StopFlag() as stop:
    print("ready", flush=True)
    x = torch.randn(256, 256)
    while True:
        x = torch.tanh(x @ x)
"""

# a loop that does look at the flag after every step: the graceful stop
GRACEFUL = """
import sys, torch
from akd.engine.signals import StopFlag
with StopFlag() as stop:
    print("ready", flush=True)
    x = torch.randn(64, 64)
    while not stop.requested:
        x = torch.tanh(x @ x)
print("stopped by", stop.requested, flush=True)
sys.exit(7)
"""


def _start(code: str, grace: str) -> subprocess.Popen:
    env = dict(os.environ, AKD_STOP_GRACE=grace, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    return p


def _wait(p: subprocess.Popen, timeout: float) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"the process did not end within {timeout} s")
    return p.returncode, out, err, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_aborts_a_stuck_step_at_once(sig):
    p = _start(STUCK, grace="600")
    p.send_signal(sig)
    time.sleep(0.5)
    assert p.poll() is None, "one signal must only request a graceful stop"
    p.send_signal(sig)
    code, _, err, took = _wait(p, 20)
    assert code == 130
    assert "second stop signal" in err and "Traceback" not in err
    assert took < 10


def test_graceful_stop_is_bounded_in_time():
    p = _start(STUCK, grace="1.5")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    code, _, err, _ = _wait(p, 30)
    took = time.monotonic() - t0
    assert code == 130
    assert "longer than 1.5 s" in err and "Traceback" not in err
    assert 1.4 <= took < 20


def test_graceful_stop_still_lets_the_loop_finish():
    p = _start(GRACEFUL, grace="600")
    p.send_signal(signal.SIGTERM)
    code, out, err, _ = _wait(p, 30)
    assert code == 7, err
    assert "stopped by SIGTERM" in out
