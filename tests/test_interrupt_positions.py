"""SharedLoop.interrupt marks every running lane at its own position and never rewrites a checkpoint a lane has
not reached: a lane resumed further on than the others (e.g. a run started by `akd compare` and later joined to
a grid) keeps its checkpoint and is marked interrupted there (it used to stay 'running', or could be saved at
the others' earlier position)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from akd.engine.loop import RunInterrupted, SharedLoop


class FakeLane:
    def __init__(self, name: str, start: tuple[int, int]):
        self.start, self.status, self.elapsed, self.saved = start, "running", 0.0, []
        self.rd = SimpleNamespace(path=Path(name))
        self.accum = SimpleNamespace(check_finite=lambda: None)
        self.summary: dict = {}

    def save(self, epoch: int, step: int) -> None:
        self.saved.append((epoch, step))

    def mark(self, status: str, **extra) -> None:
        self.status = status
        self.summary.update(status=status, **extra)


def loop_of(lanes: list[FakeLane]) -> SharedLoop:
    loop = object.__new__(SharedLoop)  # interrupt() reads only the lanes and the progress bar
    loop.lanes, loop.bar = lanes, SimpleNamespace(close=lambda: None, message=lambda *a: None)
    return loop


@pytest.mark.parametrize("done", [0, 300])
def test_lane_resumed_further_on_keeps_its_checkpoint_and_is_marked_there(done):
    behind, ahead = FakeLane("behind", (0, 0)), FakeLane("ahead", (7, 21))
    active = [behind] if done else []  # epoch 2: `ahead` resumes in epoch 8 and has not stepped
    with pytest.raises(RunInterrupted, match="checkpoints of 2 runs"):
        loop_of([behind, ahead]).interrupt("SIGINT", 2, done, active, 1.0)
    assert ahead.saved == [] and ahead.summary == {"status": "interrupted", "reason": "SIGINT",
                                                   "stopped_at": {"epoch": 8, "step": 21}}
    assert behind.saved == ([(2, done)] if done else [])
    assert behind.summary["stopped_at"] == ({"epoch": 3, "step": done} if done else {"epoch": 3, "step": 0})


def test_lane_resumed_later_in_the_same_epoch_is_not_saved_at_the_earlier_step():
    a, b = FakeLane("a", (0, 0)), FakeLane("b", (2, 500))
    with pytest.raises(RunInterrupted):
        loop_of([a, b]).interrupt("SIGTERM", 2, 300, [a, b], 1.0)
    assert a.saved == [(2, 300)] and b.saved == []
    assert b.summary["stopped_at"] == {"epoch": 3, "step": 500} and b.status == "interrupted"
