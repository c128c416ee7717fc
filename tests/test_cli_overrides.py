"""Command-line overrides: ``--set KEY=VALUE`` for any run-config key, preset terms changed by the term flags, and
options that would be ignored refused (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

SYN = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1)"
COMMON = ["--dataset", SYN, "--student", "cnn_tiny", "--batch-size", "32", "--quiet", "--epochs", "1"]


def ok(*args: str) -> tuple[str, str]:
    code, out, err = run_cli(*args)
    assert code == 0, f"akd {' '.join(args)} exited {code}:\n{err}"
    return out, err


def stored_config(d: Path) -> dict:
    return json.loads((d / "config.json").read_text())


def refused(tmp_path: Path, *args: str) -> str:
    """The one error line of a refused command (exit 2), which wrote nothing."""
    code, out, err = run_cli(*args)
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not any(tmp_path.iterdir()), "a refused command may write nothing"
    return err[len("error: "):].strip()


# ------------------------------------------------------------------------------------------
# --set KEY=VALUE
# ------------------------------------------------------------------------------------------
def test_set_types_values_as_toml_and_records_them(tmp_path):
    d = tmp_path / "run"
    ok("run", "--method", "ce", *COMMON, "--out", str(d), "--set", "weight_decay=1e-4", "--set", "nesterov=true",
       "--set", "milestones=[1]", "--set", "amp=off", "--set", "lr-decay=0.5", "--set", "teacher_lr=none")
    cfg = stored_config(d)["config"]
    assert (cfg["weight_decay"], cfg["nesterov"], cfg["milestones"], cfg["amp"], cfg["lr_decay"]) == (1e-4, True, [1], "off", 0.5)
    assert cfg["teacher_lr"] is None
    assert json.loads((d / "summary.json").read_text())["status"] == "finished"


def test_set_comes_after_the_config_file_and_refuses_a_key_its_flag_sets_too(tmp_path, monkeypatch):
    toml = tmp_path / "exp.toml"
    toml.write_text(f'dataset = "{SYN}"\nstudent = "cnn_tiny"\nweight_decay = 0.1\nmomentum = 0.5\nbatch_size = 32\nepochs = 1\n')
    ok("run", "--config", str(toml), "--quiet", "--set", "weight_decay=0.2", "--out", str(tmp_path / "r"))
    cfg = stored_config(tmp_path / "r")["config"]
    assert (cfg["weight_decay"], cfg["momentum"]) == (0.2, 0.5)  # --set wins over the file; the file's other keys stay
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert refused(empty, "run", "--config", str(toml), "--set", "epochs=3", "--epochs", "2") == \
        "--set epochs and --epochs both set 'epochs'; give one of them"
    assert refused(empty, "run", "--config", str(toml), "--set", "method=kd", "--method", "ce") == \
        "--set objective and the objective flags (--method, --affinity, ...) both set the objective; give one of them"


def test_set_unknown_key_names_the_valid_keys_closest_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = refused(tmp_path, "run", "--method", "ce", *COMMON, "--set", "wieght_decay=1e-4")
    head, keys = msg.split("; valid keys: ")
    assert head == "--set wieght_decay=1e-4: unknown run-config key 'wieght_decay'"
    keys = keys.split(", ")
    from akd.engine.config import FIELDS

    assert keys[0] == "weight_decay" and sorted(keys) == sorted(FIELDS)


@pytest.mark.parametrize("args, message", [
    (["--set", "log_every=abc"], "--set: key 'log_every' = 'abc' has the wrong type (expected int)"),
    (["--set", "log_every"], "--set 'log_every': expected KEY=VALUE, e.g. --set weight_decay=1e-4"),
    (["--set", "lr=0.1", "--set", "lr=0.2"], "--set lr is given twice"),
    (["--set", "momentum=1.5"], "--momentum 1.5: must be in [0, 1)"),
])
def test_set_bad_values_are_one_line_before_any_work(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert refused(tmp_path, "run", "--method", "ce", *COMMON, *args) == message


def test_set_on_grid_compare_and_teacher(tmp_path, monkeypatch):
    g = tmp_path / "g"
    out, _ = ok("grid", "--method", "ce", *COMMON, "--set", "weight_decay=0.01", "--out", str(g))
    (cell,) = sorted((g / "cells").glob("*/seed0"))
    assert stored_config(cell)["config"]["weight_decay"] == 0.01
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert refused(empty, "grid", "--method", "ce,kd", *COMMON, "--set", "seed=3") == \
        "--set seed would be ignored: a grid runs the seeds of --seeds (or --seed)"
    assert refused(empty, "grid", "--method", "ce,kd", *COMMON, "--set", "method=vrm") == \
        "--set objective would be ignored: 'method' is a grid axis (each cell sets it)"
    assert refused(empty, "grid", "--ce", "ce,ce(label_smoothing=0.1)", *COMMON, "--set", "objective='kd'") == \
        "--set objective would be ignored: 'ce' is a grid axis (each cell sets it)"
    assert refused(empty, "grid", "--axis", "lr=0.1,0.2", *COMMON, "--set", "lr=0.3") == \
        "--set lr would be ignored: 'lr' is a grid axis (each cell sets it)"
    assert refused(empty, "compare", "--methods", "ce,kd", *COMMON, "--set", "objective=vrm") == \
        "--set objective would be ignored: a comparison runs the methods of --methods"
    assert refused(empty, "teacher", "--model", "cnn_small", "--dataset", SYN, "--set", "lr=0.1") == \
        "--set lr would be ignored: the teacher's lr is teacher_lr (--lr)"


@pytest.mark.parametrize("command", ["run", "grid", "compare", "teacher"])
def test_set_is_documented_with_its_order(command):
    out, _ = ok(command, "--help")
    flat = " ".join(out.split())
    assert "--set KEY=VALUE" in flat and "Order: defaults < --config FILE < --set < the other flags" in flat


# ------------------------------------------------------------------------------------------
# preset terms changed by the term flags
# ------------------------------------------------------------------------------------------
def test_method_with_term_flags_trains_the_changed_preset_term(tmp_path):
    from akd import build_objective
    from akd.engine import RunConfig

    d = tmp_path / "vrm"
    ok("run", "--method", "vrm", "--unreliable", "discrepancy", "--quantile", "0.8", "--teacher", "cnn_small", *COMMON,
       "--out", str(d))
    s = json.loads((d / "summary.json").read_text())
    assert s["status"] == "finished" and s["objective_name"] == "vrm(unreliable=discrepancy,quantile=0.8)"
    (vrm,) = [t for t in s["objective"] if t["name"] == "vrm"]  # the objective the run trained
    assert (vrm["unreliable"], vrm["quantile"], vrm["redundant"], vrm["norm"]) == ("discrepancy", 0.8, "both", "l2")
    stored = stored_config(d)
    term = build_objective(stored["config"]["objective"]).terms[-1]
    assert (term.unreliable, term.quantile) == ("discrepancy", 0.8)
    assert stored["objective_terms"] == s["objective"]
    assert stored["fingerprint"] != RunConfig(**{**stored["config"], "objective": "vrm"}).fingerprint()  # another run than vrm


def test_term_flags_change_the_one_distillation_term_and_ce_weight():
    from akd.cli import objective_from_flags
    from akd.objective import term_list

    obj = objective_from_flags({"method": "kd", "weight": 2.0, "ce_weight": 0.5})
    assert obj["name"] == "kd(weight=2.0,ce_weight=0.5)"
    assert obj["terms"] == [{"loss": "ce", "weight": 0.5}, {"loss": "kd(t=4.0)", "weight": 2.0}]
    assert objective_from_flags({"method": "vrm"}) == "vrm"
    obj = objective_from_flags({"method": "vrm", "loss": "l1", "ce_weight": 0.0})
    assert [t.get("name") for t in obj["terms"]] == ["vrm"] and obj["terms"][0]["loss"] == "l1"
    assert obj["terms"][0]["affinity"] == term_list("vrm")[0][1]["affinity"]  # the preset's other keys stay
    obj = objective_from_flags({"method": "ce", "affinity": "gram", "loss": "mse"})  # no distillation term: added
    assert obj["terms"] == [{"loss": "ce", "weight": 1.0}, {"affinity": "gram", "loss": "mse"}]


def test_ce_flag_sets_the_ce_term_of_a_preset_or_of_a_flag_built_term():
    """--ce: the CE term's loss spec (issue 11: CE on the virtual view, from akd run flags and grids)."""
    from akd.cli import objective_from_flags
    from akd.objective import term_list

    obj = objective_from_flags({"method": "vrm", "ce_loss": "ce(virtual=True)"})
    assert obj["name"] == "vrm(ce=ce(virtual=True))"
    vrm = term_list("vrm")[0]
    assert obj["terms"] == [{**vrm[0], "loss": "ce(virtual=True)", "weight": 1.0}] + vrm[1:]
    obj = objective_from_flags({"method": "vrm", "ce_loss": "ce(label_smoothing=0.1)", "ce_weight": 0.5})
    assert obj["terms"][0] == {"loss": "ce(label_smoothing=0.1)", "weight": 0.5}
    obj = objective_from_flags({"affinity": "virtual-relation", "loss": "mse", "ce_loss": "ce(virtual=True)"})
    assert obj["terms"] == [{"loss": "ce(virtual=True)", "weight": 1.0}, {"affinity": "virtual-relation", "loss": "mse"}]


def test_with_ce_keeps_what_is_not_given_and_drops_ce_at_weight_zero():
    from akd.objective import with_ce

    terms = [{"affinity": "gram", "loss": "mse"}, {"loss": "ce(label_smoothing=0.1)", "weight": 2.0, "name": "sup"}]
    assert with_ce(terms, "ce(virtual=True)") == [{"loss": "ce(virtual=True)", "weight": 2.0, "name": "sup"}, terms[0]]
    assert with_ce(terms, weight=0.5) == [{**terms[1], "weight": 0.5}, terms[0]]
    assert with_ce(terms, weight=0) == [terms[0]]
    assert with_ce([], None, None) == [{"loss": "ce", "weight": 1.0}]


def test_grid_ce_key_from_a_file_cell_and_from_the_flag_axis(tmp_path, monkeypatch):
    from akd.experiment import Grid, grid_from_file
    from akd.engine import RunConfig
    from akd.objective import term_list

    f = tmp_path / "g.toml"
    f.write_text('seeds = [0]\n[term]\naffinity = "virtual-relation(views=1)"\nnorm = "l2"\nloss = "mse"\n'
                 '[[cells]]\nname = "plain"\n[[cells]]\nname = "virtual ce"\nce = "ce(virtual=True)"\n')
    plain, virtual = grid_from_file(f).validate().cells()
    assert [t["loss"] for t in plain.config.objective["terms"]] == ["ce", "mse"]
    assert [t["loss"] for t in virtual.config.objective["terms"]] == ["ce(virtual=True)", "mse"]
    base = RunConfig(dataset=SYN, student="cnn_tiny", teacher="cnn_small")
    cells = Grid(base, {"method": ["vrm", "kd"], "ce": ["ce", "ce(virtual=True)"]}, [0]).validate().cells()
    assert [c.name for c in cells] == ["method=vrm,ce=ce", "method=vrm,ce=ce(virtual=True)", "method=kd,ce=ce",
                                       "method=kd,ce=ce(virtual=True)"]
    assert cells[1].config.objective["terms"][0]["loss"] == "ce(virtual=True)"
    assert cells[1].config.objective["terms"][1:] == term_list("vrm")[0][1:]
    assert cells[3].skipped and "reads the virtual views" in cells[3].skipped  # kd draws no virtual view
    assert Grid(base, {"method": ["vrm"]}, [0]).cells()[0].config.objective == "vrm"  # no ce key: the preset's name
    with pytest.raises(Exception, match="grid axis 'ce': ce loss 'kd': must be a spec of loss 'ce'"):
        Grid(base, {"ce": ["kd"]}, [0]).validate()


@pytest.mark.parametrize("args, message", [
    (["--method", "rkd", "--weight", "2"], "--weight: preset rkd has 2 distillation terms (rkd-distance, rkd-angle), so which "
     "one the flags change is ambiguous; give the terms in a config file ([[terms]], see `akd list method`)"),
    (["--method", "vrm", "--redundant", "both", "--quantile", "0.8"], "--quantile 0.8 would be ignored: term 'vrm' has "
     "unreliable=none (the quantile is joint-entropy's and discrepancy's; add --unreliable joint-entropy or --unreliable discrepancy)"),
    (["--redundant", "both", "--quantile", "0.8"], "--redundant/--quantile without --method build a new term, which needs "
     "--loss too (e.g. --loss mse); to change a preset's term, give --method too"),
    (["--ce-weight", "0.5"], "--ce-weight 0.5 would be ignored: it sets the CE term of --method's preset or of a term "
     "built from --affinity/--norm/--loss; give one of them"),
    (["--ce", "ce(virtual=True)"], "--ce ce(virtual=True) would be ignored: it sets the CE term of --method's preset or of "
     "a term built from --affinity/--norm/--loss; give one of them"),
    (["--method", "vrm", "--ce", "kd"], "--ce 'kd': must be a spec of loss 'ce' (e.g. ce(virtual=True), ce(label_smoothing=0.1))"),
    (["--method", "vrm", "--ce", "ce(virtul=True)"], "loss 'ce' has no parameter 'virtul' (did you mean 'virtual'?); valid "
     "parameters: label_smoothing, virtual"),
    (["--method", "kd", "--ce", "ce(virtual=True)"], "term 'ce' reads the virtual views (virtual=True), but no term of "
     "objective 'kd(ce=ce(virtual=True))' draws any (an affinity with views >= 1, e.g. virtual-relation); drop virtual=True"),
    (["--method", "vrm", "--ce-weight", "-1"], "--ce-weight -1: must be >= 0 (0 drops the CE term)"),
    (["--method", "vrm", "--unreliable", "sometimes"], "unknown unreliable-edge pruning 'sometimes'; valid choices: "
     "discrepancy, joint-entropy, none, threshold"),
])
def test_term_flags_refused_in_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert refused(tmp_path, "run", *args, "--teacher", "cnn_small", *COMMON).endswith(message)


# ------------------------------------------------------------------------------------------
# options that would be ignored (issue 13, inconsistency 4)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["compare", "--methods", "ce", "--seed", "1"], "akd compare takes --seeds (comma-separated), not --seed; use --seeds 1"),
    (["teacher", "--model", "cnn_small", "--teacher-ckpt", "t.pt"], "--teacher-ckpt would be ignored: akd teacher trains a "
     "teacher; to add a trained one to the cache, use --import FILE --model MODEL"),
    (["teacher", "--model", "cnn_small", "--teacher-cache"],
     "--teacher-cache would be ignored: a teacher is trained with ce, which reads no teacher outputs"),
    (["teacher", "--list", "--epochs", "3"], "--epochs would be ignored: --list only shows the teacher cache"),
    (["teacher", "--model", "cnn_small", "--ra-magnitude", "5"],
     "--ra-magnitude would be ignored: a teacher is trained with ce, which draws no virtual views"),
    (["teacher", "--model", "cnn_small", "--set", "view_base='original'"],
     "--set view_base would be ignored: a teacher is trained with ce, which draws no virtual views"),
    (["teacher", "--import", "t.pth", "--model", "resnet8", "--lr", "0.1"],
     "--lr would be ignored: --import measures a trained teacher's accuracy; it trains nothing"),
    (["teacher", "--import", "t.pth", "--model", "resnet8", "--set", "epochs=3"],
     "--set epochs would be ignored: --import measures a trained teacher's accuracy; it trains nothing"),
    (["teacher", "--model", "cnn_small", "--epochs", "2", "--teacher-epochs", "3"],
     "--epochs and --teacher-epochs both set the teacher's epochs; give one of them"),
    (["teacher", "--model", "cnn_small", "--seed", "1", "--set", "teacher_seed=2"],
     "--set teacher_seed and --seed both set 'teacher_seed'; give one of them"),
    (["teacher", "--model", "cnn_small", "--student", "cnn_tiny"],
     "give the teacher model once (--model cnn_small), not also as --teacher/--student"),
])
def test_ignored_options_are_refused(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert refused(tmp_path, *args) == message


def test_teacher_lr_seed_and_epochs_are_the_teacher_recipe(tmp_path):
    """akd teacher --lr/--seed/--epochs used to reach keys the teacher does not read (--lr was silently ignored)."""
    from akd.engine import RunConfig, teacher_dir

    toml = tmp_path / "t.toml"
    toml.write_text("teacher_epochs = 5\n")  # the flag wins over the file (it used to lose to teacher_epochs)
    out, _ = ok("teacher", "--config", str(toml), "--model", "cnn_small", "--dataset", SYN, "--epochs", "1", "--batch-size", "32",
                "--lr", "0.02", "--seed", "3", "--quiet")
    d = Path(out.strip().splitlines()[-1].split(None, 2)[-1])
    cfg = stored_config(d)["config"]
    assert (cfg["epochs"], cfg["lr"], cfg["seed"], cfg["student"]) == (1, 0.02, 3, "cnn_small")
    want = RunConfig(dataset=SYN, teacher="cnn_small", teacher_epochs=1, teacher_lr=0.02, teacher_seed=3, batch_size=32)
    assert d == teacher_dir(want)


def test_grid_ce_weight_flag_wins_over_the_grid_file(tmp_path):
    """--ce-weight with --grid used to be ignored silently (the file's ce_weight, default 1, was used)."""
    f = tmp_path / "g.toml"
    f.write_text('seeds = [0]\nce_weight = 1.0\n[term]\naffinity = "gram"\nnorm = "l2"\nloss = "mse"\n'
                 '[axes]\nweight = [1.0]\n')
    for w, want in (("0", []), ("0.5", [0.5])):
        g = tmp_path / f"g{w}"
        ok("grid", "--grid", str(f), "--teacher", "cnn_small", "--teacher-epochs", "1", *COMMON, "--ce-weight", w,
           "--out", str(g))
        (cell,) = sorted((g / "cells").glob("*/seed0"))
        terms = stored_config(cell)["config"]["objective"]["terms"]
        assert [t["weight"] for t in terms if t["loss"] == "ce"] == want
