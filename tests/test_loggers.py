"""--logger: csv writes metrics.csv equal to metrics.jsonl; tensorboard, wandb and mlflow (here fakes injected through
sys.modules, since none of them is a dependency) receive the resolved config and every epoch's metrics; a missing
package or an unknown name stops the command before any work, in one line naming the pip install."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest

from conftest import run_cli

SYN = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1)"
COMMON = ["--dataset", SYN, "--student", "cnn_tiny", "--batch-size", "32", "--quiet"]


def ok(*args: str) -> str:
    code, out, err = run_cli(*args)
    assert code == 0, f"akd {' '.join(args)} exited {code}:\n{err}"
    return err


def jsonl_rows(d: Path) -> list[dict]:
    from akd.loggers import flat_metrics

    return [flat_metrics(json.loads(line)) for line in (d / "metrics.jsonl").read_text().splitlines()]


def csv_rows(d: Path) -> list[dict]:
    with open(d / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def assert_csv_equals_jsonl(d: Path) -> None:
    want, got = jsonl_rows(d), csv_rows(d)
    assert got == [{k: float(v) for k, v in r.items()} for r in want] and len(got) >= 1
    with open(d / "metrics.csv", newline="") as f:
        assert next(csv.reader(f)) == list(want[0])  # the columns in metrics.jsonl's order


def test_csv_logger_writes_what_metrics_jsonl_holds(tmp_path):
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--epochs", "2", "--logger", "csv", "--out", str(d))
    assert_csv_equals_jsonl(d)
    assert list(csv_rows(d)[0])[:3] == ["epoch", "lr", "train/ce"] and len(csv_rows(d)) == 2


def test_csv_logger_after_an_interruption_and_resume_equals_metrics_jsonl(tmp_path):
    from akd.engine import RunConfig, RunInterrupted, train

    cfg = RunConfig(dataset=SYN, student="cnn_tiny", objective="ce", epochs=3, batch_size=32, loggers=["csv"])
    d = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        train(cfg, d, progress=False, stop_after_steps=4)  # 3 steps per epoch: inside epoch 2
    assert_csv_equals_jsonl(d)
    train(cfg, d, resume=True, progress=False)
    assert_csv_equals_jsonl(d)
    assert [r["epoch"] for r in csv_rows(d)] == [1, 2, 3]


def test_grid_cells_log_to_their_own_folders(tmp_path):
    g = tmp_path / "g"
    ok("grid", "--axis", "lr=0.1,0.05", "--method", "ce", *COMMON, "--epochs", "1", "--logger", "csv", "--out", str(g))
    cells = sorted((g / "cells").glob("*/seed0"))
    assert len(cells) == 2
    for d in cells:
        assert_csv_equals_jsonl(d)


def test_loggers_do_not_change_the_run_identity():
    from akd.engine import RunConfig

    assert RunConfig(loggers=["csv", "tensorboard"]).fingerprint() == RunConfig().fingerprint()


@pytest.mark.parametrize("name, module, package", [
    ("tensorboard", "torch.utils.tensorboard", "tensorboard"), ("wandb", "wandb", "wandb"), ("mlflow", "mlflow", "mlflow")])
def test_missing_package_is_one_line_naming_the_pip_install_before_any_work(name, module, package, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the package were not installed
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("run", "--method", "ce", *COMMON, "--epochs", "1", "--logger", f"csv,{name}")
    assert code == 2 and err == f"error: --logger {name}: the {package} package is missing; pip install {package}\n"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--logger", "tensorbord"], "--logger tensorbord: unknown logger 'tensorbord' (did you mean 'tensorboard'?); "
                                 "valid choices: csv, mlflow, tensorboard, wandb"),
    (["--logger", "wandb(projekt='x')"], "--logger wandb(projekt='x'): logger 'wandb' has no parameter 'projekt' "
                                         "(did you mean 'project'?); valid parameters: project, mode"),
    (["--logger", "csv", "--set", "loggers=['csv']"], "--set loggers and --logger both set 'loggers'; give one of them"),
])
def test_bad_logger_specs_are_refused(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("run", "--method", "ce", *COMMON, "--epochs", "1", *args)
    assert (code, err) == (2, f"error: {message}\n")
    assert not any(tmp_path.iterdir())


def test_resume_with_other_loggers_is_refused(tmp_path):
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--epochs", "1", "--out", str(d))
    code, _, err = run_cli("run", "--method", "ce", *COMMON, "--epochs", "1", "--out", str(d), "--resume", "--logger", "csv")
    assert (code, err) == (2, f"error: --logger csv would be ignored: --resume continues {d} with its stored config (loggers: none)\n")


# ------------------------------------------------------------------------------------------
# tensorboard, wandb, mlflow through fakes
# ------------------------------------------------------------------------------------------
class Calls(list):
    """Every call a fake received: (name, args, kwargs)."""

    def named(self, name: str) -> list[tuple]:
        return [c for c in self if c[0] == name]


def fake_tensorboard(calls: Calls) -> types.ModuleType:
    class SummaryWriter:
        def __init__(self, **kw):
            calls.append(("init", (), kw))

        def __getattr__(self, name):
            return lambda *a, **kw: calls.append((name, a, kw))

    mod = types.ModuleType("torch.utils.tensorboard")
    mod.SummaryWriter = SummaryWriter  # type: ignore[attr-defined]
    return mod


def fake_wandb(calls: Calls) -> types.ModuleType:
    class Run:
        def log(self, data, step):
            calls.append(("log", (data,), {"step": step}))

        def finish(self):
            calls.append(("finish", (), {}))

    def init(**kw):
        calls.append(("init", (), kw))
        return Run()

    mod = types.ModuleType("wandb")
    mod.init = init  # type: ignore[attr-defined]
    return mod


def fake_mlflow(calls: Calls) -> types.ModuleType:
    class Client:
        def __init__(self, tracking_uri=None):
            calls.append(("init", (), {"tracking_uri": tracking_uri}))

        def get_experiment_by_name(self, name):
            return None

        def create_experiment(self, name):
            return "7"

        def create_run(self, experiment_id, run_name):
            calls.append(("create_run", (experiment_id,), {"run_name": run_name}))
            return types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))

        def __getattr__(self, name):
            return lambda *a, **kw: calls.append((name, a, kw))

    mod = types.ModuleType("mlflow")
    mod.MlflowClient = Client  # type: ignore[attr-defined]
    return mod


def test_tensorboard_receives_config_and_every_epoch(tmp_path, monkeypatch):
    calls = Calls()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tensorboard(calls))
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--epochs", "2", "--logger", "tensorboard", "--out", str(d))
    assert calls[0] == ("init", (), {"log_dir": str(d / "tensorboard"), "purge_step": None})
    (text,) = calls.named("add_text")
    assert text[1][0] == "config" and '"objective_terms"' in text[1][1] and '"lr": 0.05' in text[1][1]  # resolved lr
    scalars = {(a[0], a[2]): a[1] for _, a, _ in calls.named("add_scalar")}
    want = {(k, r["epoch"]): v for r in jsonl_rows(d) for k, v in r.items()}
    assert scalars == want
    assert calls[-1][0] == "close"


def test_wandb_receives_config_and_every_epoch(tmp_path, monkeypatch):
    calls = Calls()
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--epochs", "2", "--logger", "wandb(project='kd',mode='offline')", "--out", str(d))
    (init,) = calls.named("init")
    kw = init[2]
    assert (kw["project"], kw["mode"], kw["name"], kw["dir"]) == ("kd", "offline", "run", str(d))
    assert kw["config"]["lr"] == 0.05 and kw["config"]["milestones"] == [1] and kw["config"]["loggers"] == ["wandb(project='kd',mode='offline')"]
    assert [(c[1][0], c[2]["step"]) for c in calls.named("log")] == [(r, r["epoch"]) for r in jsonl_rows(d)]
    assert calls[-1][0] == "finish"


def test_mlflow_receives_config_and_every_epoch(tmp_path, monkeypatch):
    calls = Calls()
    monkeypatch.setitem(sys.modules, "mlflow", fake_mlflow(calls))
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--epochs", "2", "--logger", "mlflow(tracking_uri='file:/x',experiment='kd')",
       "--out", str(d))
    assert calls[0] == ("init", (), {"tracking_uri": "file:/x"}) and calls[1] == ("create_run", ("7",), {"run_name": "run"})
    params = {a[1]: a[2] for _, a, _ in calls.named("log_param")}
    assert params["epochs"] == "2" and params["milestones"] == "[1]" and params["teacher"] == "null"
    metrics = {(a[1], kw["step"]): a[2] for _, a, kw in calls.named("log_metric")}
    assert metrics == {(k, r["epoch"]): v for r in jsonl_rows(d) for k, v in r.items()}
    assert calls[-1] == ("set_terminated", ("r1",), {})


def test_a_failing_backend_is_one_line_and_the_run_is_marked_failed(tmp_path, monkeypatch):
    def init(**kw):
        raise RuntimeError("no network")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    d = tmp_path / "run"
    code, _, err = run_cli("run", "--method", "ce", *COMMON, "--epochs", "1", "--logger", "csv,wandb", "--out", str(d))
    assert (code, err) == (2, "error: --logger wandb failed: RuntimeError: no network\n")
    assert json.loads((d / "summary.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------------------------------
# the real backends, where installed (offline / local modes; none is a dependency of akd)
# ------------------------------------------------------------------------------------------
def read_tensorboard(d: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(d / "tensorboard"))
    ea.Reload()
    return {(tag, e.step): e.value for tag in ea.Tags()["scalars"] for e in ea.Scalars(tag)}


def read_mlflow(d: Path, uri: str) -> dict:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("akd").experiment_id])
    assert run.info.run_name == d.name and run.info.status == "FINISHED"
    return {(k, m.step): m.value for k in run.data.metrics for m in client.get_metric_history(run.info.run_id, k)}


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow"])
def test_real_backend_records_every_epoch(backend, tmp_path, monkeypatch):
    pytest.importorskip(backend)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the local file store behind this switch
    d, uri = tmp_path / "run", f"file:{tmp_path / 'mlruns'}"
    spec = "tensorboard" if backend == "tensorboard" else f"mlflow(tracking_uri='{uri}')"
    ok("run", "--method", "ce", *COMMON, "--epochs", "2", "--logger", spec, "--out", str(d))
    got = read_tensorboard(d) if backend == "tensorboard" else read_mlflow(d, uri)
    want = {(k, r["epoch"]): v for r in jsonl_rows(d) for k, v in r.items()}
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(v, rel=1e-6) for k, v in want.items())  # float32 in TB


def test_real_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--epochs", "2", "--logger", "wandb(mode='offline')", "--out", str(d))
    (run,) = (d / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb"))
