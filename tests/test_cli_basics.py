"""The command line's small parts: a help that imports no torch, documented exit codes, help examples that
name files that exist, and options that would be ignored refused with one line (exit 2)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "teacher", "list", "grid", "compare", "report", "demo")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["compare", "--help"], ["--version"]])
def test_help_imports_no_torch(args):
    code = ("import sys\nfrom akd.cli import main\ntry:\n    main(%r)\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('heavy:', sorted(m for m in ('torch', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))") % (args,)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "heavy: []"


def test_help_examples_name_files_that_exist():
    named = set()
    for cmd in COMMANDS:
        code, out, err = run_cli(cmd, "--help")
        assert code == 0, err
        named |= set(re.findall(r"experiments/[\w./-]+\.toml", out))
    assert named, "no help example names an experiments/ file (the check would test nothing)"
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, missing


def test_exit_codes_are_documented_and_distinct():
    import akd.cli
    from akd.engine.trainer import RunInterrupted
    from akd.errors import AkdError, ConfigError, TrainingDiverged

    assert (ConfigError("x").exit_code, TrainingDiverged("x").exit_code, RunInterrupted("x").exit_code) == (2, 3, 130)
    assert AkdError.exit_code == 2
    doc = akd.cli.__doc__ or ""
    for line in ("* 2 -- user error", "* 3 -- the run diverged", "* 130 -- interrupted"):
        assert line in doc, line
    readme = (ROOT / "README.md").read_text()
    assert "| 3 | the run diverged" in readme and "| 130 | interrupted" in readme and "| 2 | user error" in readme


def test_diverged_error_leaves_with_code_3(capsys):
    from akd.cli import _fail
    from akd.errors import TrainingDiverged

    with pytest.raises(SystemExit) as e:
        _fail(TrainingDiverged("loss term(s) ce became NaN/inf at step 3"))
    assert e.value.code == 3
    assert capsys.readouterr().err == "error: loss term(s) ce became NaN/inf at step 3\n"


@pytest.mark.parametrize("args, message", [
    (["compare", "--seed", "1", "--methods", "ce"], "akd compare takes --seeds (comma-separated), not --seed; use --seeds 1"),
    (["grid", "--affinity", "gram", "--norm", "zs", "--loss", "mse", "--seed", "1", "--seeds", "0,1"],
     "give either --seeds or --seed, not both (--seed 1 would be ignored; e.g. --seeds 1,2)"),
    (["report", "runs/nothing-here", "--metric", "best_acc"],
     "--metric chooses the accuracy of the --baseline comparison; add --baseline CELL or drop --metric"),
])
def test_options_that_would_be_ignored_are_refused(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*args)
    assert (code, err) == (2, f"error: {message}\n")
    assert not any(tmp_path.iterdir()), "nothing may be written"
