"""Published teachers: other tools' checkpoint files, `akd teacher --import`, and published numbers beside akd's."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest
import torch

from akd.engine.checkpoint import weights_digest
from akd.engine.teacher_files import load_teacher_file, read_weights
from akd.errors import CheckpointError, ConfigError
from akd.models import create_model

from conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures"
SYN = "synthetic(n=64,test_n=32,classes=10,size=32,channels=3,seed=1)"


def _model(name: str, classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = create_model(name, num_classes=classes, in_channels=3)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so they must load too
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _repdistiller_file(path: Path, m: torch.nn.Module) -> Path:
    """RepDistiller's train_teacher.py layout: {'epoch', 'model': state_dict, 'accuracy', 'optimizer'}."""
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 240, "model": m.state_dict(), "accuracy": torch.tensor(73.25), "optimizer": opt.state_dict()}, path)
    return path


# ---------------------------------------------------------------------------------------------
# the CIFAR zoo is RepDistiller's
# ---------------------------------------------------------------------------------------------
REFERENCE = json.loads((FIXTURES / "repdistiller_state_dicts.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_state_dict_names_and_shapes_equal_repdistillers(name):
    sd = create_model(name, num_classes=100, in_channels=3).state_dict()
    ref = REFERENCE[name]
    pairs = sorted((k, list(v.shape)) for k, v in sd.items())
    assert len(pairs) == ref["count"]
    assert sum(v.numel() for v in sd.values()) == ref["numel"]
    for k, shape in ref["spot"].items():
        assert list(sd[k].shape) == shape, k
    assert hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16] == ref["sha256_16"]


@pytest.mark.parametrize("name", ["resnet8x4", "wrn_16_1", "vgg8", "ShuffleV1", "MobileNetV2"])
def test_repdistiller_file_loads_with_identical_logits(tmp_path, name):
    m = _model(name)
    f = _repdistiller_file(tmp_path / f"{name}_vanilla" / "ckpt_epoch_240.pth", m)
    net, info = load_teacher_file(f, None, 10, (3, 32, 32))  # architecture from the <model>_vanilla folder
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(net.eval()(x)["logits"], m(x)["logits"])
    assert info["teacher"] == name and info["teacher_digest"] == weights_digest(m.state_dict())
    assert info["teacher_file"] == {"epoch": 240, "accuracy": pytest.approx(73.25), "format": "checkpoint"}


@pytest.mark.parametrize("layout", ["torchdistill", "keyed", "bare", "dataparallel", "mdistiller"])
def test_other_layouts_load(tmp_path, layout):
    m = _model("resnet8")
    sd = m.state_dict()
    content = {
        "torchdistill": {"model": sd, "optimizer": {}, "lr_scheduler": {}, "best_value": 0.7, "args": argparse.Namespace(lr=0.1)},
        "keyed": {"state_dict": sd, "meta": {"epochs": 3}},
        "bare": sd,
        "dataparallel": {"model": {f"module.{k}": v for k, v in sd.items()}},
        "mdistiller": {"epoch": 240, "model": sd, "optimizer": {}, "best_acc": 70.1},
    }[layout]
    torch.save(content, tmp_path / "t.pth")
    got, meta = read_weights(tmp_path / "t.pth")
    assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    net, _ = load_teacher_file(tmp_path / "t.pth", "resnet8", 10, (3, 32, 32))
    assert weights_digest(net.state_dict()) == weights_digest(sd)


def test_mismatch_is_one_line_naming_keys_and_shapes(tmp_path):
    f = _repdistiller_file(tmp_path / "t.pth", _model("resnet8", classes=100))
    with pytest.raises(CheckpointError) as e:
        load_teacher_file(f, "resnet8", 10, (3, 32, 32))
    msg = str(e.value)
    assert "\n" not in msg
    assert "weights do not fit model 'resnet8': 2 of another shape: fc.weight [100, 64] vs [10, 64], fc.bias [100] vs [10]" in msg
    with pytest.raises(CheckpointError, match=r"missing: layer1\.1\.conv1\.weight \[16, 16, 3, 3\]"):
        load_teacher_file(f, "resnet14", 100, (3, 32, 32))
    with pytest.raises(ConfigError, match="does not say its architecture: give it with --teacher MODEL"):
        load_teacher_file(f, None, 100, (3, 32, 32))


def test_cli_teacher_and_teacher_ckpt_together_and_bad_file_exit_2(tmp_path):
    f = _repdistiller_file(tmp_path / "t.pth", _model("resnet8"))
    base = ["--dataset", SYN, "--student", "resnet8", "--epochs", "1", "--batch-size", "16", "--quiet", "--method", "kd"]
    code, out, err = run_cli("run", "--teacher", "resnet14", "--teacher-ckpt", str(f), "--out", str(tmp_path / "bad"), *base)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "weights do not fit model 'resnet14'" in err and not (tmp_path / "bad").exists()
    code, out, err = run_cli("run", "--teacher", "resnet8", "--teacher-ckpt", str(f), "--out", str(tmp_path / "ok"), *base)
    assert code == 0, err
    s = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert s["teacher"] == "resnet8" and s["teacher_digest"] == weights_digest(torch.load(f)["model"])


# ---------------------------------------------------------------------------------------------
# akd teacher --import
# ---------------------------------------------------------------------------------------------
def test_import_measures_once_and_is_reused_by_name(tmp_path, monkeypatch):
    m = _model("resnet8")
    f = _repdistiller_file(tmp_path / "teachers" / "resnet8_vanilla" / "ckpt_epoch_240.pth", m)
    code, out, err = run_cli("teacher", "--import", str(f), "--model", "resnet8", "--dataset", SYN)
    assert code == 0, err
    assert "imported" in out and "(file: accuracy 73.25, epoch 240)" in out
    code, listing, _ = run_cli("teacher", "--list")
    assert "imported" in listing and "resnet8" in listing
    rec = next((p for p in Path(listing.split()[-1]).parent.glob("import.json")), None)
    rec = json.loads(rec.read_text())
    assert rec["digest"] == weights_digest(m.state_dict()) and rec["file"] == {"accuracy": pytest.approx(73.25), "epoch": 240}

    # --teacher resnet8 on that data set now uses the imported weights (no training), with the measured accuracy
    import akd.engine.metrics as metrics
    import akd.engine.trainer as trainer

    measured = []
    real = metrics.evaluate
    counted = lambda *a, **k: measured.append(1) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(metrics, "evaluate", counted)  # every evaluation, whoever imported it
    monkeypatch.setattr(trainer, "evaluate", counted)
    code, out, err = run_cli("run", "--method", "dkd", "--teacher", "resnet8", "--student", "resnet8", "--dataset", SYN,
                             "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0, err
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["teacher_digest"] == rec["digest"] and s["teacher_acc"] == rec["test_acc"]
    assert len(measured) == 1  # the student's evaluation only: the teacher was not measured again
    assert "using imported teacher" in err


def test_import_warns_when_far_from_published(tmp_path, monkeypatch):
    (tmp_path / "pub" / "synthetic").mkdir(parents=True)
    (tmp_path / "pub" / "synthetic" / "published.toml").write_text(
        '[sources]\nx = "a test table"\n[teachers]\nresnet8 = { acc = 99.0, source = "x" }\n')
    monkeypatch.setenv("AKD_PUBLISHED_DIR", str(tmp_path / "pub"))
    f = _repdistiller_file(tmp_path / "t.pth", _model("resnet8"))
    code, out, err = run_cli("teacher", "--import", str(f), "--model", "resnet8", "--dataset", SYN)
    assert code == 0
    assert "warning: teacher resnet8 measures" in err and "published accuracy is 99.00% (a test table)" in err


def test_import_of_a_mismatching_file_is_exit_2(tmp_path):
    f = _repdistiller_file(tmp_path / "t.pth", _model("resnet8", classes=100))
    code, out, err = run_cli("teacher", "--import", str(f), "--model", "resnet8", "--dataset", SYN)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# published numbers beside akd's
# ---------------------------------------------------------------------------------------------
def test_published_table_is_well_formed():
    from akd.published import load_published, published_cell, published_teacher_acc

    table = load_published("cifar100")
    assert published_teacher_acc("cifar100", "resnet32x4") == {"acc": 79.42, "source": table["sources"]["crd"]}
    assert published_cell("cifar100", "resnet32x4", "resnet8x4", "dkd")["acc"] == 76.32
    assert published_cell("cifar100", "resnet32x4", "resnet8x4", "dist")["acc"] == 76.31
    assert published_cell("cifar100", "resnet32x4", "resnet8x4", "ce")["acc"] == 72.50  # the vanilla student
    assert published_cell("cifar100", "resnet32x4", "ShuffleV2", "dkd") is None  # left empty, not guessed
    for pair in table["pairs"]:
        for cell in [pair["teacher_acc"], pair["student_acc"], *pair["methods"].values()]:
            assert 50 < cell["acc"] < 100 and cell["source"] in table["sources"]
    from akd.models import MODELS

    pairs = {(p["teacher"], p["student"]) for p in table["pairs"]}
    assert all(t in MODELS and s in MODELS for t, s in pairs)
    configs = {tuple(json.loads(json.dumps(_toml(p)))[k] for k in ("teacher", "student"))
               for p in (Path(__file__).parents[1] / "experiments" / "cifar100").glob("*_*.toml") if p.name != "published.toml"}
    assert configs <= pairs  # every experiment config's pair has its published row


def _toml(p: Path) -> dict:
    import tomllib

    return tomllib.loads(p.read_text())


def test_experiment_configs_use_the_published_teacher_files():
    for p in (Path(__file__).parents[1] / "experiments" / "cifar100").glob("*.toml"):
        if p.name == "published.toml":
            continue
        c = _toml(p)
        assert c["teacher_ckpt"] == f"teachers/{c['teacher']}_vanilla/ckpt_epoch_240.pth", p.name


def test_compare_shows_published_column(tmp_path, monkeypatch):
    (tmp_path / "pub" / "synthetic").mkdir(parents=True)
    (tmp_path / "pub" / "synthetic" / "published.toml").write_text(
        '[sources]\nx = "a test table"\n[[pairs]]\nteacher = "cnn_small"\nstudent = "cnn_tiny"\n'
        'teacher_acc = { acc = 50.0, source = "x" }\nstudent_acc = { acc = 30.0, source = "x" }\n'
        '[pairs.methods]\nkd = { acc = 40.0, source = "x" }\n')
    monkeypatch.setenv("AKD_PUBLISHED_DIR", str(tmp_path / "pub"))
    ds = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1,seed=3)"
    code, out, err = run_cli("compare", "--methods", "ce,kd,dist", "--seeds", "0", "--dataset", ds, "--teacher", "cnn_small",
                             "--student", "cnn_tiny", "--epochs", "1", "--teacher-epochs", "1", "--batch-size", "32",
                             "--out", str(tmp_path / "cmp"), "--quiet")
    assert code == 0, err
    md = (tmp_path / "cmp" / "results.md").read_text()
    assert "| published (%) | last − published |" in md
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| method=")}
    assert " 30.00 | " in rows["method=ce"] and " 40.00 | " in rows["method=kd"]
    assert rows["method=dist"].rstrip().endswith("| | |")  # not listed: empty
    assert "a test table" in md
    code, out, err = run_cli("report", str(tmp_path / "cmp"))
    assert code == 0 and "| published (%) |" in (tmp_path / "cmp" / "results.md").read_text()
