"""`mypy akd` (config: setup.cfg [mypy]) in the test suite, so `make test` (= CI) type-checks the package.

akd was not written against a type checker: when the check was added, mypy reported the errors counted per
file in tests/mypy_baseline.json.  This test fails on any error beyond those counts (a new error in a file,
or any error in a file not listed), printing mypy's lines for that file; when a file gets cleaner, lower its
count (or drop it) in the baseline so the gain is kept.  No module is excluded from the check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = json.loads((Path(__file__).parent / "mypy_baseline.json").read_text())


def test_mypy_reports_no_new_errors():
    pytest.importorskip("mypy", reason="mypy is in the test extra (pip install -e .[test])")
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode in (0, 1), r.stderr[-3000:]  # 2: mypy itself failed (bad config, crash)
    errors = [line for line in r.stdout.splitlines() if re.match(r"^akd/[^:]+:\d+: error: ", line)]
    if r.returncode == 1:
        assert errors, r.stdout[-3000:]
    counts = Counter(line.split(":", 1)[0] for line in errors)
    worse = {f: (n, BASELINE.get(f, 0)) for f, n in counts.items() if n > BASELINE.get(f, 0)}
    shown = "\n".join(line for line in errors if line.split(":", 1)[0] in worse)
    assert not worse, f"new mypy errors (file: (now, baseline)): {worse}\n{shown}"
