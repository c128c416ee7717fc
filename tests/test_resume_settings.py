"""What a resumed run takes from the caller, and what counts as the run's identity (issue 13, inconsistency 2):
``teacher_cache`` (and the other where-and-how settings) come from the caller on resume; ``checkpoint_every`` says
how often a run saves, not what it computes."""

import dataclasses

import pytest

from akd.engine import RunConfig, train
from akd.engine.config import HASHED_AT_DEFAULT, NOT_RESULT_FIELDS, RESUME_FROM_CALLER, same_result
from akd.engine.runs import RunDir
from akd.engine.teacher import teacher_dir
from akd.engine.teacher_cache import clear
from akd.engine.trainer import RunInterrupted

SYN = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1,seed=5)"


def started_run(d, cfg: RunConfig) -> RunDir:
    """A run folder holding ``cfg`` as a started run (config.json and a summary), without training."""
    rd = RunDir(d)
    rd.commit(cfg, force=False)
    rd.summary.write_text('{"status": "interrupted"}')
    return rd


def test_resume_takes_teacher_cache_and_checkpoint_every_from_the_caller(tmp_path):
    stored = RunConfig(dataset=SYN, teacher="cnn_small", objective="kd", lr=0.02, epochs=3)
    rd = started_run(tmp_path / "run", stored)
    caller = RunConfig(dataset=SYN, objective="ce", teacher_cache=True, checkpoint_every=3, max_memory=2.0, log_every=7)
    cfg = rd.resolve(caller, resume=True, force=False)
    assert (cfg.teacher_cache, cfg.checkpoint_every, cfg.max_memory, cfg.log_every) == (True, 3, 2.0, 7)
    assert (cfg.objective, cfg.lr, cfg.teacher, cfg.epochs) == ("kd", 0.02, "cnn_small", 3)  # the stored run's result fields


def test_only_where_and_how_fields_come_from_the_caller():
    assert set(RESUME_FROM_CALLER) <= set(NOT_RESULT_FIELDS)
    assert set(HASHED_AT_DEFAULT) <= set(NOT_RESULT_FIELDS)


def test_checkpoint_every_does_not_change_the_run_identity(tmp_path):
    a, b = RunConfig(teacher="cnn_small"), RunConfig(teacher="cnn_small", checkpoint_every=5)
    assert a.fingerprint() == b.fingerprint() and teacher_dir(a) == teacher_dir(b)
    assert same_result(a.to_dict(), b)
    rd = started_run(tmp_path / "run", a)
    assert rd.holds(b)
    assert rd.resolve(b, resume=False, force=False) is b  # the same run: continued, not refused as another one


def test_a_run_continues_with_another_checkpoint_every(tmp_path):
    cfg = RunConfig(dataset=SYN, student="cnn_tiny", objective="ce", epochs=2, batch_size=16, log_every=1000)
    d = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        train(cfg, d, progress=False, stop_after_steps=2)
    s = train(dataclasses.replace(cfg, checkpoint_every=2), d, progress=False)
    assert s["status"] == "finished"


def test_resume_with_the_teacher_cache_uses_it(tmp_path):
    cfg = RunConfig(dataset=SYN, student="cnn_tiny", teacher="cnn_small", objective="kd", epochs=2, teacher_epochs=1,
                    batch_size=16, log_every=1000, cache_dir=str(tmp_path / "cache"))
    d = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        train(cfg, d, progress=False, stop_after_steps=2)
    lines: list[str] = []
    s = train(dataclasses.replace(cfg, teacher_cache=True), d, resume=True, progress=False, log=lines.append)
    clear()
    assert s["status"] == "finished"
    assert any(line.startswith("teacher cache:") for line in lines), lines
