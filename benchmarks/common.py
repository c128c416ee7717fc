"""Shared helpers of the akd benchmarks: arguments, machine info, side-by-side timing, markdown tables.

Every benchmark measures the variants it compares *in one process*, alternating them within each
repetition (the order is rotated from one repetition to the next), after one untimed warm-up call of
each, and reports medians over the repetitions plus the median of the per-repetition ratios.  That
keeps comparisons meaningful on a machine that is busy with other work (the ratio of two variants
timed seconds apart drifts much less than either absolute time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing akd
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (after the sys.path line)


# --------------------------------------------------------------------------------------------
# arguments / device
# --------------------------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions of every variant (median reported)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script works (< 1 min on a CPU)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads on CPU (0: leave torch's default); 1 is the steadiest on a shared machine")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    return p


def resolve_device(spec: str) -> torch.device:
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {spec}: no CUDA GPU is available here; use --device cpu")
    return dev


def setup(args: argparse.Namespace) -> torch.device:
    """Resolve the device, set the CPU thread count, print the machine table; returns the device."""
    dev = resolve_device(args.device)
    if dev.type == "cpu" and args.threads and args.threads > 0:
        torch.set_num_threads(args.threads)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(machine_markdown(dev))
    print()
    return dev


# --------------------------------------------------------------------------------------------
# machine info
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:  # read-only
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores_online": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "akd_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    return info


def machine_markdown(device: torch.device) -> str:
    info = machine_info(device)
    return md_table(["machine", "value"], [[k, v] for k, v in info.items()])


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall time of ``fn()`` (device synchronised before and after) and its result."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def alternate(variants: dict[str, Callable[[], float | None]], reps: int, *, device: torch.device, warmup: bool = True,
              log: Callable[[str], None] | None = print) -> dict[str, list[float]]:
    """Run every variant once untimed (warm-up), then ``reps`` rounds of all variants, rotating the order.

    A variant returns its own time in seconds (e.g. the engine's ``time_s``) or None, in which case the
    wall time of the call is used.  Returns ``{name: [seconds per rep]}``.
    """
    names = list(variants)

    def one(name: str) -> float:
        dt, own = timed(variants[name], device)
        return float(own) if own is not None else dt

    if warmup:
        for n in names:
            one(n)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        order = names[k:] + names[:k]
        if r % 2:
            order = order[::-1]
        for n in order:
            out[n].append(one(n))
        if log:
            log(f"  rep {r + 1}/{reps}: " + ", ".join(f"{n}={out[n][-1]:.3f}s" for n in names))
    return out


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over repetitions of num[i] / den[i] (paired: the two were timed side by side)."""
    return median(a / b for a, b in zip(num, den) if b > 0)


def spread(xs: Sequence[float]) -> str:
    """min-max as a percentage of the median (how noisy the repetitions were)."""
    m = median(xs)
    if not xs or not m:
        return "-"
    return f"±{50 * (max(xs) - min(xs)) / m:.0f}%"


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------
def fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(c) for c in r) + " |")
    return "\n".join(lines)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\n(results written to {p})")


@contextlib.contextmanager
def quiet_stderr():
    """Silence the C++ profiler's start/stop lines written straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def count_macs(model: torch.nn.Module, shape: Sequence[int], device: torch.device | str = "cpu") -> int:
    """Multiply-accumulates of one forward pass on one image (Conv2d + Linear layers)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was = model.training
    model.eval()
    with torch.inference_mode():
        model(torch.zeros(1, *shape, device=device))
    model.train(was)
    for h in hs:
        h.remove()
    return total


def synthetic_spec(n: int, *, classes: int, size: int, channels: int, test_n: int = 64, seed: int = 0) -> str:
    return f"synthetic(n={n},test_n={test_n},classes={classes},size={size},channels={channels},seed={seed})"
