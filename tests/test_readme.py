"""Every ```python block of README.md runs as written; examples/own_training_loop.py runs (a few steps).

Each block runs in its own interpreter (a block that registers a part must not leak into other tests).  A
block whose first line names a file of the package (``# akd/affinity/laplacian.py``) runs as that module, so
its relative imports resolve as they would in the file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

DRIVER = r'''
import importlib, re, sys
code = open(sys.argv[1], encoding="utf-8").read()
m = re.match(r"#\s*(akd/[\w/]+)\.py", code)
module = m.group(1).replace("/", ".") if m else "__main__"
package = module.rsplit(".", 1)[0] if m else None
if package:
    importlib.import_module(package)
exec(compile(code, "README.md python block", "exec"), {"__name__": module, "__package__": package})
exec(compile(sys.argv[2], "check", "exec"), {})
print("BLOCK OK")
'''

# what a block promises beyond running (checked in the same interpreter, after the block)
CHECKS = {
    "laplacian": "import akd, torch\n"
                 "obj = akd.build_objective([{'source': 'pooled', 'affinity': 'laplacian(s=2)', 'norm': 'l1', 'loss': 'kl'}])\n"
                 "x = torch.randn(6, 4)\n"
                 "assert abs(obj({'pooled': x}, {'pooled': x})['total'].item()) < 1e-6\n"
                 "assert obj({'pooled': x}, {'pooled': torch.randn(6, 4)})['total'].item() > 0\n",
}


def python_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return env


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2, "README.md lost its ```python blocks (or the extraction broke)"
    assert any("build_objective" in b for b in BLOCKS) and any("virtual_views" in b for b in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    block = BLOCKS[index]
    check = next((c for key, c in CHECKS.items() if key in block.splitlines()[0]), "")
    src = tmp_path / "block.py"
    src.write_text(block, encoding="utf-8")
    r = subprocess.run([sys.executable, "-c", DRIVER, str(src), check], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "BLOCK OK" in r.stdout, f"README python block {index} failed:\n{block}\n{r.stderr[-3000:]}"


def test_own_training_loop_example_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "own_training_loop.py"), "--steps", "3"], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("step 0: ce ") and " vrm " in lines[0] and " total " in lines[0], r.stdout
    assert re.search(r"^student accuracy: \d+\.\d\d%$", r.stdout, flags=re.M), r.stdout
    assert len((ROOT / "examples" / "own_training_loop.py").read_text().splitlines()) <= 60
