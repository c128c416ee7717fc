import contextlib
import io
import os
from pathlib import Path

import pytest
import torch

# 2 threads by default; AKD_TEST_THREADS=N runs the suite with N (the reliability matrix: 1, 2 and 4)
torch.set_num_threads(int(os.environ.get("AKD_TEST_THREADS", 0)) or min(2, os.cpu_count() or 1))

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own teacher cache (never the user's)."""
    monkeypatch.setenv("AKD_CACHE_DIR", str(tmp_path_factory.mktemp("akd-cache")))


def fmnist_available() -> bool:
    from akd.data import load_dataset

    try:
        load_dataset("fashion-mnist(train_n=10,test_n=10,download=False)")
        return True
    except Exception:
        return False


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``akd ARGS`` in-process through the console entry point (``akd.cli.main``, which turns
    errors into exit codes); return (exit code, stdout, stderr)."""
    from akd.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()
