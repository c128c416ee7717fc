"""Errors raised by the engine are phrased for Python callers; the CLI shows the same error with its flags.

Issue 13: "the engine raises errors phrased as CLI flags (`--resume`, `--force`, `--out`), so Python users read
command-line advice".  These tests fail on that code (its messages named the flags in both places)."""

from __future__ import annotations

import pickle

import pytest

from akd.engine.config import RunConfig
from akd.engine.runs import RunDir
from akd.errors import AkdError, ConfigError
from akd.experiment import run_grid  # noqa: F401  (the grid's folder errors follow the same rule)


def _cfg(**kw) -> RunConfig:
    return RunConfig(**{"dataset": "synthetic(n=64,test_n=16,classes=4,size=8,channels=1)", "student": "cnn_tiny",
                        "objective": "ce", "epochs": 1, **kw})


def test_folder_refusal_reads_as_api_advice_and_cli_advice(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    (rd.path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError) as ei:
        rd.resolve(_cfg(), resume=False, force=False)
    api, cli = str(ei.value), ei.value.cli_message
    assert "force=True" in api and "--" not in api, api
    assert cli.startswith(f"--out {rd.path}") and "--force" in cli, cli


def test_cli_message_defaults_to_the_api_message_and_survives_pickling():
    plain = AkdError("bad value 3; valid: 1, 2")
    assert plain.cli_message == str(plain)
    e = ConfigError("run folder x; pass force=True", cli="--out x; use --force")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ConfigError and str(back) == str(e) and back.cli_message == "--out x; use --force"
