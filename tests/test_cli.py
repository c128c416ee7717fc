"""The akd command line: run, grid, compare, list, report, teacher (through the real entry point).

Every command goes through :func:`akd.cli.main` in-process (same error handling, exit codes
and output as the console script, minus the interpreter start-up); the teacher cache is
isolated per test by ``conftest.py`` (``AKD_CACHE_DIR``) and module fixtures set their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from akd.engine.checkpoint import load_checkpoint

from conftest import run_cli

SYN = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1)"
COMMON = ["--dataset", SYN, "--student", "cnn_tiny", "--batch-size", "32", "--quiet"]
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "checkpoint.pt", "model.pt")


akd = run_cli


def ok(*args: str) -> tuple[str, str]:
    code, out, err = akd(*args)
    assert code == 0, f"akd {' '.join(args)} exited {code}:\n{err}"
    return out, err


def summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def metrics(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------
# akd run
# ------------------------------------------------------------------------------------------
def test_run_with_flags_prints_summary_and_fills_run_dir(tmp_path):
    out_dir = tmp_path / "run"
    out, err = ok("run", "--affinity", "virtual-relation", "--norm", "zs", "--loss", "mse", "--teacher", "cnn_small",
                  *COMMON, "--epochs", "1", "--out", str(out_dir))
    for f in RUN_FILES:
        assert (out_dir / f).is_file(), f
    s = summary(out_dir)
    assert s["status"] == "finished" and s["epochs"] == 1 and len(metrics(out_dir)) == 1
    assert [t["name"] for t in s["objective"]] == ["ce", "virtual-relation/zs/mse"]
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert f"acc {s['teacher_acc']:.2f}%" in lines["teacher"] and "cnn_small" in lines["teacher"]
    assert f"last {s['last_acc']:.2f}%" in lines["student"] and f"best {s['best_acc']:.2f}%" in lines["student"]
    assert f"{s['time_s']:.1f} s training" in lines["time"]
    assert lines["run"].startswith("run ") and lines["run"].split()[-1] == str(out_dir)  # the "run dir" line
    assert "training teacher cnn_small" in err  # teacher trained once into the (isolated) cache
    model = load_checkpoint(out_dir / "model.pt")
    assert model["model"] == "cnn_tiny" and model["num_classes"] == 4 and model["in_shape"] == [1, 16, 16]


def test_run_with_method_preset(tmp_path):
    ok("run", "--method", "vrm", "--teacher", "cnn_small", *COMMON, "--epochs", "1", "--out", str(tmp_path / "vrm"))
    s = summary(tmp_path / "vrm")
    assert s["status"] == "finished" and s["objective_name"] == "vrm" and s["teacher"] == "cnn_small"
    cfg = json.loads((tmp_path / "vrm" / "config.json").read_text())["config"]
    assert cfg["objective"] == "vrm" and cfg["teacher"] == "cnn_small"


def test_run_with_config_file_and_flags_overriding_it(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text(f'dataset = "{SYN}"\nstudent = "cnn_tiny"\nteacher = "cnn_small"\nmethod = "kd"\n'
                    "epochs = 2\nteacher_epochs = 1\nbatch_size = 32\nseed = 3\n")
    ok("run", "--config", str(toml), "--quiet", "--out", str(tmp_path / "file"))
    ok("run", "--config", str(toml), "--epochs", "1", "--seed", "4", "--quiet", "--out", str(tmp_path / "flags"))
    assert len(metrics(tmp_path / "file")) == 2 and summary(tmp_path / "file")["seed"] == 3
    assert len(metrics(tmp_path / "flags")) == 1 and summary(tmp_path / "flags")["seed"] == 4
    for d in ("file", "flags"):
        s = summary(tmp_path / d)
        assert s["objective_name"] == "kd" and s["teacher"] == "cnn_small" and s["status"] == "finished"
    # the file's teacher is shared: both runs read the one cached teacher
    assert summary(tmp_path / "file")["teacher_acc"] == summary(tmp_path / "flags")["teacher_acc"]
    # --teacher-ckpt on the command line replaces the file's --teacher (not "give only one of them")
    ckpt = tmp_path / "file" / "model.pt"
    ok("run", "--config", str(toml), "--student", "cnn_small", "--teacher-ckpt", str(ckpt), "--epochs", "1", "--quiet",
       "--out", str(tmp_path / "ckpt"))
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())["config"]
    assert cfg["teacher"] is None and cfg["teacher_ckpt"] == str(ckpt)


def test_version_and_help():
    out, _ = ok("--version")
    assert "0.1.0" in out
    out, _ = ok("run", "--help")
    assert "--affinity" in out and "--resume" in out


# ------------------------------------------------------------------------------------------
# akd grid (+ rerun, report)
# ------------------------------------------------------------------------------------------
GRID_ARGS = ["grid", "--affinity", "gram,cosine", "--norm", "l2,zs", "--loss", "mse", "--seeds", "0",
             "--teacher", "cnn_small", *COMMON, "--epochs", "1"]


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    """One 2x2x1 grid shared by the grid tests (with its own teacher cache)."""
    root = tmp_path_factory.mktemp("grid")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AKD_CACHE_DIR", str(root / "cache"))
        out, err = ok(*GRID_ARGS, "--out", str(root / "g"))
    return root / "g", out, err


def _cell_dirs(g: Path) -> list[Path]:
    return sorted(p for p in (g / "cells").glob("*/seed*") if p.is_dir())


def test_grid_2x2x1_writes_four_finished_rows_and_reports(grid_dir):
    g, out, _ = grid_dir
    df = pd.read_csv(g / "results.csv")
    assert len(df) == 4 and (df["status"] == "finished").all()
    assert set(zip(df["affinity"], df["norm"])) == {("gram", "l2"), ("gram", "zs"), ("cosine", "l2"), ("cosine", "zs")}
    assert (df["seed"] == 0).all() and df["last_acc"].between(0, 100).all()
    assert (g / "results.md").is_file() and (g / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (g / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # accuracy per epoch, from metrics.jsonl
    md = (g / "results.md").read_text()
    for cell in df["cell"]:
        assert f"| {cell} | 1/1 |" in md
    assert "| cell | seeds | last acc (%)" in out  # the table is printed too
    assert len(_cell_dirs(g)) == 4
    # one teacher for every cell
    assert df["teacher_acc"].nunique() == 1
    assert len({json.loads((d / "config.json").read_text())["config"]["teacher_ckpt"] for d in _cell_dirs(g)}) == 1


def test_grid_rerun_redoes_no_cell_and_gives_the_same_table(grid_dir, tmp_path, monkeypatch):
    g, out1, _ = grid_dir
    before = {d: ((d / "model.pt").stat().st_mtime_ns, (d / "metrics.jsonl").read_text()) for d in _cell_dirs(g)}
    csv1, md1 = (g / "results.csv").read_text(), (g / "results.md").read_text()
    monkeypatch.setenv("AKD_CACHE_DIR", str(g.parent / "cache"))  # the grid's teacher cache
    out2, err2 = ok(*GRID_ARGS, "--out", str(g))
    after = {d: ((d / "model.pt").stat().st_mtime_ns, (d / "metrics.jsonl").read_text()) for d in _cell_dirs(g)}
    assert before == after  # no cell trained again: same model.pt mtimes, no new metrics lines
    assert "training teacher" not in err2 and "reusing cached teacher" in err2
    assert (g / "results.csv").read_text() == csv1 and (g / "results.md").read_text() == md1
    assert out2 == out1


def test_report_regenerates_the_same_results(grid_dir):
    g, _, _ = grid_dir
    saved_md, saved_csv = (g / "results.md").read_text(), (g / "results.csv").read_text()
    for f in ("results.md", "results.csv", "results.png", "curves.png"):
        (g / f).unlink()
    out, _ = ok("report", str(g))
    assert (g / "results.md").read_text() == saved_md
    assert (g / "results.csv").read_text() == saved_csv
    assert (g / "results.png").is_file() and (g / "curves.png").is_file()
    assert "| cell | seeds |" in out


def test_report_of_a_folder_that_is_no_grid(tmp_path):
    code, _, err = akd("report", str(tmp_path))
    assert code == 2 and "no grid.json" in err and len(err.strip().splitlines()) == 1


def test_grid_skips_refused_combination_with_reason_but_unknown_name_is_an_error(tmp_path):
    g = tmp_path / "g"
    out, err = ok("grid", "--affinity", "gram", "--norm", "zs,softmax", "--loss", "kl", "--teacher", "cnn_small", *COMMON,
                  "--epochs", "1", "--out", str(g))
    df = pd.read_csv(g / "results.csv")
    assert len(df) == 2
    skipped = df[df["status"] == "skipped"].iloc[0]
    assert skipped["norm"] == "zs" and "probability" in skipped["reason"]
    assert (df[df["norm"] == "softmax"]["status"] == "finished").all()
    assert "skip affinity=gram,norm=zs,loss=kl" in err and "probability" in err
    assert "| affinity=gram,norm=zs,loss=kl | skipped |" in (g / "results.md").read_text()
    assert not (g / "cells" / "affinity=gram_norm=zs_loss=kl").exists()

    code, _, err = akd("grid", "--affinity", "gram", "--norm", "zs,zss", "--loss", "mse", *COMMON, "--epochs", "1",
                       "--out", str(tmp_path / "bad"))
    assert code == 2 and "unknown normalization 'zss'" in err and "did you mean 'zs'" in err
    assert not (tmp_path / "bad").exists()


def test_grid_file_with_flags_overriding_its_base(tmp_path):
    gf = tmp_path / "grid.toml"
    gf.write_text(f'seeds = [0]\n[base]\ndataset = "{SYN}"\nstudent = "cnn_tiny"\nepochs = 2\nbatch_size = 32\n'
                  '[axes]\nmethod = ["ce"]\n')
    ok("grid", "--grid", str(gf), "--epochs", "1", "--quiet", "--out", str(tmp_path / "g"))
    (d,) = _cell_dirs(tmp_path / "g")
    assert len(metrics(d)) == 1  # --epochs 1 wins over the file's epochs = 2


# ------------------------------------------------------------------------------------------
# akd compare: equal footing
# ------------------------------------------------------------------------------------------
def test_compare_same_init_data_and_teacher_per_seed(tmp_path):
    c = tmp_path / "cmp"
    ok("compare", "--methods", "ce,kd,vrm", "--seeds", "0,1", "--teacher", "cnn_small", *COMMON, "--epochs", "1",
       "--out", str(c))
    df = pd.read_csv(c / "results.csv")
    assert len(df) == 6 and (df["status"] == "finished").all()
    for seed in (0, 1):
        rows = df[df["seed"] == seed]
        assert rows["init_digest"].nunique() == 1 and rows["data_digest"].nunique() == 1
    assert df[df["seed"] == 0]["init_digest"].iloc[0] != df[df["seed"] == 1]["init_digest"].iloc[0]
    assert df[df["seed"] == 0]["data_digest"].iloc[0] != df[df["seed"] == 1]["data_digest"].iloc[0]
    # one teacher checkpoint for every distilling run, and the plain student has none
    cfgs = {(r["method"], r["seed"]): json.loads((Path(r["run_dir"]) / "config.json").read_text())["config"]
            for _, r in df.iterrows()}
    sums = {(r["method"], r["seed"]): summary(Path(r["run_dir"])) for _, r in df.iterrows()}
    ckpts = {cfgs[k]["teacher_ckpt"] for k in cfgs if k[0] != "ce"}
    assert len(ckpts) == 1 and Path(ckpts.pop()).is_file()
    assert len({sums[k]["teacher_acc"] for k in sums if k[0] != "ce"}) == 1
    assert all(sums[k]["teacher"] is None for k in sums if k[0] == "ce")
    # per-seed identical data order in the runs' own records too
    for seed in (0, 1):
        assert len({sums[(m, seed)]["data_digest"] for m in ("ce", "kd", "vrm")}) == 1


def test_equal_footing_checked_directly_on_the_engine():
    """build_context gives bit-identical student inits across objectives for a seed; the loader the
    engine builds gives identical batches; both change with the seed."""
    from akd.data import DeviceLoader
    from akd.engine import RunConfig, build_context
    from akd.engine.seeds import STREAM_DATA, stream_seed
    from akd.models import create_model

    teacher = create_model("cnn_small", num_classes=4, in_channels=1)

    def ctx(objective, seed):
        cfg = RunConfig(dataset=SYN, student="cnn_tiny", objective=objective, epochs=1, batch_size=32, seed=seed)
        return build_context(cfg, teacher_module=teacher if objective != "ce" else None, progress=False, log=lambda m: None)

    def loader(c):  # exactly as akd.engine.trainer._run builds it
        ds = c.data
        return DeviceLoader(ds.train_x, ds.train_y, c.cfg.batch_size, device=c.device, shuffle=True, drop_last=True,
                            augment=True, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std,
                            seed=stream_seed(c.cfg.seeds()["data"], STREAM_DATA))

    a, b, c = ctx("ce", 0), ctx("vrm", 0), ctx("ce", 1)
    sa, sb, sc = a.student.state_dict(), b.student.state_dict(), c.student.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    la, lb, lc = loader(a), loader(b), loader(c)
    for epoch in (0, 1):
        assert torch.equal(la.order(epoch), lb.order(epoch))
        for (xa, ya), (xb, yb) in zip(la.raw_batches(epoch), lb.raw_batches(epoch)):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(la.order(0), lc.order(0))
    assert a.init_digest == b.init_digest != c.init_digest


# ------------------------------------------------------------------------------------------
# akd list
# ------------------------------------------------------------------------------------------
def test_list_all_families_each_family_and_formula():
    out, _ = ok("list")
    for fam in ("affinity", "norm", "loss", "method", "model", "dataset"):
        assert f"{fam}:" in out.splitlines()
    for name in ("virtual-relation", "zs", "mse", "vrm", "cnn_tiny", "synthetic"):
        assert f"  {name}" in out
    fam_out = {}
    for fam in ("affinity", "norm", "loss", "method", "model", "dataset"):
        fam_out[fam], _ = ok("list", fam)
        assert fam_out[fam].splitlines()[0] == f"{fam}:"
    assert "params: gamma" in fam_out["affinity"]  # rbf(gamma=...)
    assert "term: " in fam_out["method"] and "cnn_small" in fam_out["model"] and "fashion-mnist" in fam_out["dataset"]
    assert "vrm" not in fam_out["norm"]
    formula, _ = ok("list", "loss", "--formula")
    assert len(formula.splitlines()) > len(fam_out["loss"].splitlines())
    alias, _ = ok("list", "losses")
    assert alias == fam_out["loss"]


def test_list_unknown_family_is_exit_2_with_choices():
    code, out, err = akd("list", "lossez")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: unknown family 'lossez' (did you mean 'loss'?); valid choices: affinity, dataset, loss, method, model, norm, schedule"]


# ------------------------------------------------------------------------------------------
# akd teacher
# ------------------------------------------------------------------------------------------
def test_teacher_trains_into_the_cache_and_list_shows_it(tmp_path):
    out, _ = ok("teacher", "--list")
    assert "teacher cache is empty" in out
    out, err = ok("teacher", "--model", "cnn_small", "--dataset", SYN, "--epochs", "1", "--batch-size", "32", "--quiet")
    run_dir = Path(out.strip().splitlines()[-1].split(None, 2)[-1])
    assert (run_dir / "model.pt").is_file() and summary(run_dir)["status"] == "finished"
    out, _ = ok("teacher", "--list")
    header, *rows = out.strip().splitlines()
    assert header.split() == ["model", "dataset", "epochs", "seed", "status", "acc", "path"]
    assert len(rows) == 1 and rows[0].split()[0] == "cnn_small" and rows[0].split()[-1] == str(run_dir / "model.pt")
    assert "finished" in rows[0]
    # a run with --teacher cnn_small and the same recipe reuses it
    _, err = ok("run", "--method", "kd", "--teacher", "cnn_small", *COMMON, "--epochs", "1", "--out", str(tmp_path / "kd"))
    assert f"reusing cached teacher {run_dir}" in err
    # --teacher-cache stores the per-view tables; --list shows them and a later process loads them
    from akd.engine import teacher_cache

    teacher_cache.clear()
    _, err = ok("run", "--method", "kd", "--teacher", "cnn_small", *COMMON, "--epochs", "1", "--teacher-cache",
                "--out", str(tmp_path / "kd-cached"))
    assert "teacher cache: stored" in err
    out, _ = ok("teacher", "--list")
    assert "teacher-view tables (--teacher-cache): 1 file(s)" in out.strip().splitlines()[-1]
    _, err = ok("run", "--method", "rkd", "--teacher", "cnn_small", *COMMON, "--epochs", "1", "--teacher-cache",
                "--out", str(tmp_path / "rkd-cached"))
    assert "teacher cache: stored" in err  # rkd reads the teacher's pooled features too: other tables
    teacher_cache.clear()  # as in a new process
    _, err = ok("run", "--method", "kd", "--teacher", "cnn_small", *COMMON, "--epochs", "1", "--seed", "1", "--teacher-cache",
                "--out", str(tmp_path / "kd-cached-2"))
    assert "teacher cache: reusing" in err
    out, _ = ok("teacher", "--list")
    assert "teacher-view tables (--teacher-cache): 2 file(s)" in out.strip().splitlines()[-1]
    teacher_cache.clear()


# ------------------------------------------------------------------------------------------
# akd demo (the README's main job; here on synthetic data, with other settings than the default)
# ------------------------------------------------------------------------------------------
def test_demo_with_other_settings_goes_to_its_own_folder_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--dataset", SYN, "--teacher", "cnn_small", "--student", "cnn_tiny", "--epochs", "1", "--teacher-epochs", "1",
            "--methods", "ce,vrm", "--quiet"]
    out, err = ok(*args)
    assert "VRM student vs plain student:" in out
    folders = [p.name for p in (tmp_path / "runs").iterdir()]
    assert len(folders) == 1 and folders[0].startswith("demo-") and folders[0] != "demo"  # not the default demo's folder
    df = pd.read_csv(tmp_path / "runs" / folders[0] / "results.csv")
    assert list(df["method"]) == ["ce", "vrm"] and list(df["status"]) == ["finished", "finished"]
    stamp = (tmp_path / "runs" / folders[0] / "cells" / "method=vrm" / "seed0" / "summary.json").stat().st_mtime_ns
    out2, _ = ok(*args)  # the same settings: read back, same table
    assert (tmp_path / "runs" / folders[0] / "cells" / "method=vrm" / "seed0" / "summary.json").stat().st_mtime_ns == stamp
    assert out2.split("results:")[0] == out.split("results:")[0]
    out3, _ = ok(*args[:-3], "--methods", "ce,kd", "--quiet")  # other settings: another folder, no error
    assert len(list((tmp_path / "runs").iterdir())) == 2 and "VRM student" not in out3
