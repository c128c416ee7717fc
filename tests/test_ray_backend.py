"""`akd grid --backend ray`: the same run directories and results.csv as the local backend (local Ray instance)."""

import sys
from pathlib import Path

import pandas as pd
import pytest

from akd.engine import RunConfig
from akd.errors import ConfigError
from akd.experiment import Grid, run_grid

BASE = {"dataset": "synthetic(n=128,test_n=32,classes=4,size=16,channels=1,seed=2)", "student": "cnn_tiny",
        "teacher": "cnn_small", "epochs": 1, "teacher_epochs": 1, "batch_size": 32, "log_every": 1000, "device": "cpu"}


def test_missing_ray_is_one_line_config_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install akd\[ray\]"):
        run_grid(Grid(RunConfig(**BASE), {"method": ["ce"]}, [0]), tmp_path / "g", progress=False, log=lambda m: None,
                 backend="ray")
    assert not (tmp_path / "g").exists()


def test_ray_grid_equals_local_grid(tmp_path):
    ray = pytest.importorskip("ray")
    axes = {"method": ["ce", "kd", "vrm"]}

    def grid(out, **kw):
        return run_grid(Grid(RunConfig(**BASE), dict(axes), [0, 1]), tmp_path / out, progress=False, log=lambda m: None,
                        share_teacher=True, **kw)

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        remote = grid("ray", backend="ray")  # first: the teacher is trained by a Ray task
        local = grid("local")  # reuses the cached teacher
        again = grid("ray", backend="ray")  # re-running reads the finished runs back
    finally:
        ray.shutdown()
    a = pd.read_csv(tmp_path / "local" / "results.csv")
    b = pd.read_csv(tmp_path / "ray" / "results.csv")
    cols = ["cell", "method", "seed", "status", "last_acc", "best_acc", "best_epoch", "teacher_acc", "init_digest", "data_digest"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (b["status"] == "finished").all() and len(b) == 6
    for d in b["run_dir"]:  # resumable run directories, like the local backend's
        assert {"config.json", "summary.json", "checkpoint.pt", "model.pt", "metrics.jsonl"} <= {p.name for p in Path(d).iterdir()}
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), remote[cols].reset_index(drop=True))
    assert list(local["time_s"]) != [] and list(again["time_s"]) == list(remote["time_s"])  # nothing retrained
