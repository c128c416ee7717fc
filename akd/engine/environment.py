"""The machine a run ran on, recorded in every ``summary.json`` (``environment``).

Floating-point results depend on the hardware and the kernels: a run is bit-reproducible on the same CPU
model (or GPU), the same torch build, the same ATen kernel set (``ATEN_CPU_CAPABILITY``) and the same
number of torch threads; across any of these, results differ in the last bits and training amplifies
that into different accuracies (typically by a few tenths of a point on the small CPU budgets).  The
record says which of these a run had, so a number can be reproduced where it can be.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The akd checkout's commit (with ``+dirty`` when it has local changes), or None outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment(device: torch.device | None = None) -> dict[str, Any]:
    """akd/Python/torch versions, CPU model and kernel set, threads, GPU and determinism settings."""
    from .. import __version__

    env: dict[str, Any] = {
        "akd": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(), "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        env["ATEN_CPU_CAPABILITY"] = os.environ["ATEN_CPU_CAPABILITY"]
    if device is not None and device.type == "cuda":
        env.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), gpu=torch.cuda.get_device_name(device))
    env["argv"] = " ".join(sys.argv[:1] + sys.argv[1:])[:500]
    return env
