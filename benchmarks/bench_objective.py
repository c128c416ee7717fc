"""Objective cost: forward + backward of every preset objective vs the student's training step.

Inputs are random representations with the CIFAR shapes of resnet8x4: ``logits`` [N, C],
``pooled`` [N, 256], ``map`` [N, 256, 8, 8]; N = B for every objective except ``vrm``, which gets
N = 2B rows (the real batch + one RandAugment view).  Student representations are leaf tensors that
require grad (the time is the objective's own forward + backward), teacher ones do not.

Reference: the student step, resnet8x4 forward + backward + SGD on 32x32x3 images with 100 classes,
timed in the same repetitions (alternating with the objectives).  On a CPU it is measured at B = 64 and
B = 256 only (B = 1024 takes too long there); on CUDA at every B.  Goal: objective <= 10 % of the
student step at B = 64.

Peak memory of one forward + backward: on CPU each (objective, B, C) runs in a fresh process (forked
from a server that has only imported torch and akd) and reports ``ru_maxrss`` minus the value after
creating its inputs (the high-water mark is reset first via /proc/self/clear_refs where available); on
CUDA ``torch.cuda.max_memory_allocated`` minus the allocation after creating the inputs.

VRM before/after: the closed form of edge-graph matching (default, O(N^2 + N C) memory) vs
``akd.affinity._edge_gram.set_enabled(False)`` (materialised [N, N, C] and [C, C, N] edge tensors),
time side by side and peak memory, at N = 512, C = 1000 (and a smaller N that fits in memory).  The
materialised runs are capped (``--mat-cap-gb``, RLIMIT_AS) so an oversize case reports "does not fit"
instead of pushing the machine into swap / the OOM killer.

    python benchmarks/bench_objective.py            # full CPU run (~4 min on 1 contended core)
    python benchmarks/bench_objective.py --quick    # smoke test
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from typing import Any

import common
import torch

from akd.affinity import _edge_gram
from akd.methods import METHODS
from akd.models import create_model
from akd.objective import build_objective

PRESETS = ["ce", "kd", "rkd", "cc", "sp", "pkt", "dist", "dkd", "vrm", "vrm-zs-edge"]
#: the vrm preset with one open point changed (its options of README "What the VRM paper leaves open"): the
#: Huber loss, the distance rules for unreliable edges (both graphs) and the joint-entropy rule
VRM_VARIANTS: dict[str, dict[str, Any]] = {
    "vrm+edge-huber": {"loss": "edge-huber(beta=1.0)"},
    "vrm+discrepancy": {"unreliable": "discrepancy", "quantile": 0.9, "unreliable_graphs": "all"},
    "vrm+threshold": {"unreliable": "threshold", "delta": 0.5, "unreliable_graphs": "all"},
    "vrm+joint-entropy": {"unreliable": "joint-entropy", "quantile": 0.9},
}
OBJECTIVES = PRESETS + list(VRM_VARIANTS)


def objective_spec(name: str) -> Any:
    """A preset's name, or the vrm preset's terms with a variant's settings on its relational term."""
    if name not in VRM_VARIANTS:
        return name
    return {"terms": [t if t.get("name") != "vrm" else {**t, **VRM_VARIANTS[name]} for t in METHODS.build("vrm")],
            "name": name}
D_POOLED, MAP_CH, MAP_HW = 256, 256, 8


def rows_for(name: str, B: int) -> int:
    """B real rows, plus B per virtual view the objective reads (the vrm presets: one)."""
    return B * (1 + build_objective(objective_spec(name)).views)


def estimate_gib(name: str, B: int, C: int) -> float:
    """Rough peak of one forward+backward (only used to skip cases that cannot fit)."""
    n = rows_for(name, B)
    if name == "rkd":  # angle relation [N, N, N] (+ edge vectors [N, N, D]), several live copies in fwd/bwd
        return (7 * n**3 + 4 * n * n * D_POOLED) * 4 / 2**30
    return 0.0


def make_inputs(name: str, B: int, C: int, device: torch.device, seed: int = 0):
    obj = build_objective(objective_spec(name)).to(device)
    n = rows_for(name, B)
    g = torch.Generator(device="cpu").manual_seed(seed)

    def rep(src: str) -> torch.Tensor:
        if src == "logits":
            x = 3.0 * torch.randn(n, C, generator=g)
        elif src == "pooled":
            x = torch.randn(n, D_POOLED, generator=g).relu_()
        else:
            x = torch.randn(n, MAP_CH, MAP_HW, MAP_HW, generator=g).relu_()
        return x.to(device)

    s = {k: rep(k).requires_grad_(True) for k in obj.student_sources()}
    t = {k: rep(k) for k in obj.teacher_sources()} if obj.needs_teacher else None
    y = torch.randint(0, C, (B,), generator=g).to(device)
    return obj, s, t, y


def fwd_bwd(obj, s, t, y, B: int) -> None:
    for v in s.values():
        v.grad = None
    obj(s, t, y, batch_size=B)["total"].backward()


# --------------------------------------------------------------------------------------------
# peak memory
# --------------------------------------------------------------------------------------------
def _reset_hiwater() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mem_child(name: str, B: int, C: int, threads: int, closed_form: bool, cap_gib: float | None) -> dict[str, Any]:
    """Runs in a fresh forked process: peak RSS of one forward+backward above the inputs (MiB)."""
    torch.set_num_threads(threads)
    _edge_gram.set_enabled(closed_form)
    dev = torch.device("cpu")
    o, s, t, y = make_inputs(name, 8, C, dev)  # warm up lazily initialised kernels/buffers on a tiny batch
    fwd_bwd(o, s, t, y, 8)
    del o, s, t, y
    obj, s, t, y = make_inputs(name, B, C, dev)
    if cap_gib:
        vm = _vm_size_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (int(vm + cap_gib * 2**30), resource.RLIM_INFINITY))
    reset = _reset_hiwater()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        fwd_bwd(obj, s, t, y, B)
    except (RuntimeError, MemoryError) as e:
        return {"ok": False, "error": str(e).splitlines()[0][:160], "seconds": time.perf_counter() - t0, "reset": reset}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"ok": True, "peak_mib": (peak - base) / 1024, "seconds": time.perf_counter() - t0, "reset": reset}


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_CTX = None


def run_mem_child(*args) -> dict[str, Any]:
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(["__main__", "torch", "akd.objective"])
    with _CTX.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(mem_child, args)


def cuda_peak_mib(name: str, B: int, C: int, device: torch.device, closed_form: bool = True) -> dict[str, Any]:
    old = _edge_gram.set_enabled(closed_form)
    try:
        obj, s, t, y = make_inputs(name, B, C, device)
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fwd_bwd(obj, s, t, y, B)
        torch.cuda.synchronize(device)
        return {"ok": True, "peak_mib": (torch.cuda.max_memory_allocated(device) - base) / 2**20}
    except torch.cuda.OutOfMemoryError as e:
        return {"ok": False, "error": str(e).splitlines()[0][:160]}
    finally:
        _edge_gram.set_enabled(old)
        torch.cuda.empty_cache()


def peak(name: str, B: int, C: int, device: torch.device, threads: int, closed_form: bool = True,
         cap_gib: float | None = None) -> dict[str, Any]:
    if device.type == "cuda":
        return cuda_peak_mib(name, B, C, device, closed_form)
    return run_mem_child(name, B, C, threads, closed_form, cap_gib)


# --------------------------------------------------------------------------------------------
# student step
# --------------------------------------------------------------------------------------------
class StudentStep:
    """resnet8x4 forward + backward + SGD on random 32x32x3 images (the reference cost)."""

    def __init__(self, B: int, device: torch.device, classes: int = 100):
        from akd.engine.device import autocast, use_channels_last

        torch.manual_seed(0)
        self.cl = use_channels_last(device, "auto")
        self.model = create_model("resnet8x4", num_classes=classes).to(
            device, memory_format=torch.channels_last if self.cl else torch.contiguous_format).train()
        kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, **kw)
        self.x = torch.randn(B, 3, 32, 32, device=device)
        if self.cl:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, classes, (B,), device=device)
        self.autocast = lambda: autocast(device, "auto")

    def __call__(self) -> None:
        with self.autocast():
            out = self.model(self.x)
            loss = torch.nn.functional.cross_entropy(out["logits"].float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


# --------------------------------------------------------------------------------------------
def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--objectives", nargs="+", default=OBJECTIVES, choices=OBJECTIVES)
    p.add_argument("--batches", nargs="+", type=int, default=[64, 256, 1024])
    p.add_argument("--classes", nargs="+", type=int, default=[10, 100, 1000])
    p.add_argument("--step-batches", nargs="+", type=int, default=None,
                   help="batch sizes of the student-step reference (default: 64 256 on CPU, all --batches on CUDA)")
    p.add_argument("--max-gib", type=float, default=6.0, help="skip cases whose estimated peak exceeds this")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--vrm-nodes", nargs="+", type=int, default=[128, 512],
                   help="N (= 2B rows) of the VRM closed-form vs materialised comparison (C = --vrm-classes)")
    p.add_argument("--vrm-classes", type=int, default=1000)
    p.add_argument("--vrm-reps", type=int, default=2)
    p.add_argument("--mat-cap-gb", type=float, default=8.0,
                   help="address-space cap (GiB above the inputs) for materialised VRM on CPU; beyond it: 'does not fit'")
    args = p.parse_args()
    if args.quick:
        args.batches, args.classes, args.reps = [16, 64], [10, 100], 2
        args.step_batches = [16]
        args.vrm_nodes, args.vrm_classes, args.vrm_reps = [32], 100, 1
    device = common.setup(args)
    threads = torch.get_num_threads()
    print(f"command: `{common.command_line()}`\n")
    t_all = time.perf_counter()
    step_bs = args.step_batches or ([b for b in args.batches if b <= 256] if device.type == "cpu" else list(args.batches))

    # ---------------- timing: objectives and student steps, alternating within each rep
    cases = [(o, B, C) for o in args.objectives for B in args.batches for C in args.classes]
    skipped = {c for c in cases if estimate_gib(*c) > args.max_gib}
    todo = [c for c in cases if c not in skipped]
    fns: dict[str, Any] = {}
    for (o, B, C) in todo:
        obj, s, t, y = make_inputs(o, B, C, device)
        fns[f"{o}|{B}|{C}"] = (lambda obj=obj, s=s, t=t, y=y, B=B: fwd_bwd(obj, s, t, y, B))
    for B in step_bs:
        fns[f"step|{B}"] = StudentStep(B, device)
    print(f"timing {len(todo)} objective cases + {len(step_bs)} student steps, {args.reps} reps "
          f"(skipped, estimated > {args.max_gib} GiB: {sorted(skipped) or 'none'})")
    times = common.alternate(fns, args.reps, device=device, log=None)
    med = {k: common.median(v) for k, v in times.items()}
    print(f"(timing took {time.perf_counter() - t_all:.0f} s)")

    # ---------------- memory
    mem: dict[tuple, dict] = {}
    if not args.no_memory:
        t0 = time.perf_counter()
        for c in todo:
            mem[c] = peak(*c, device=device, threads=threads)
        print(f"(peak memory took {time.perf_counter() - t0:.0f} s)")

    step_rows = [[f"resnet8x4 fwd+bwd+SGD, B={B}", 1e3 * med[f"step|{B}"], common.spread(times[f"step|{B}"])] for B in step_bs]
    print("\n### Student step (reference)\n")
    print(common.md_table(["step", "ms (median)", "spread"], step_rows))

    def cell_time(o, B, C):
        if (o, B, C) in skipped:
            return f"skipped (est. {estimate_gib(o, B, C):.0f} GiB)"
        ms = 1e3 * med[f"{o}|{B}|{C}"]
        ref = med.get(f"step|{B}")
        return f"{ms:.3g} ms ({100 * ms / (1e3 * ref):.2g} %)" if ref else f"{ms:.3g} ms"

    def cell_mem(o, B, C):
        r = mem.get((o, B, C))
        if r is None:
            return "-"
        return f"{r['peak_mib']:.0f}" if r["ok"] else "failed"

    print("\n### Objective forward+backward time (median) and % of the student step at the same B\n")
    hdr = ["objective", "B", "rows N"] + [f"C={C}" for C in args.classes]
    rows = [[o, B, rows_for(o, B)] + [cell_time(o, B, C) for C in args.classes] for o in args.objectives for B in args.batches]
    print(common.md_table(hdr, rows))
    missing = [B for B in args.batches if B not in step_bs]
    if missing:
        print(f"\n(no % at B = {', '.join(map(str, missing))}: the student step was not measured there on {device.type})")
    if mem:
        what = "max_memory_allocated" if device.type == "cuda" else "ru_maxrss in a fresh process"
        print(f"\n### Peak memory of one objective forward+backward, MiB above the inputs ({what})\n")
        rows = [[o, B, rows_for(o, B)] + [cell_mem(o, B, C) for C in args.classes] for o in args.objectives for B in args.batches]
        print(common.md_table(hdr, rows))

    # ---------------- VRM: closed form vs materialised
    print(f"\n### VRM edge-graph matching: closed form (default) vs materialised (_edge_gram.set_enabled(False)), C={args.vrm_classes}\n")
    vrm_rows, vrm_out = [], []
    C = args.vrm_classes
    for N in args.vrm_nodes:
        B = N // 2
        mc = peak("vrm", B, C, device, threads, True)
        mm = peak("vrm", B, C, device, threads, False, cap_gib=args.mat_cap_gb)
        obj, s, t, y = make_inputs("vrm", B, C, device)

        def closed(obj=obj, s=s, t=t, y=y, B=B):
            _edge_gram.set_enabled(True)
            fwd_bwd(obj, s, t, y, B)

        def materialised(obj=obj, s=s, t=t, y=y, B=B):
            old = _edge_gram.set_enabled(False)
            try:
                fwd_bwd(obj, s, t, y, B)
            finally:
                _edge_gram.set_enabled(old)

        variants = {"closed": closed}
        if mm["ok"]:
            variants["materialised"] = materialised
        tv = common.alternate(variants, args.vrm_reps, device=device, warmup="materialised" not in variants, log=None)
        _edge_gram.set_enabled(True)
        tc = common.median(tv["closed"])
        tm = common.median(tv["materialised"]) if "materialised" in tv else float("nan")
        cap = f" (cap {args.mat_cap_gb:g} GiB)" if device.type == "cpu" else ""
        vrm_rows.append([N, C, 1e3 * tc, f"{mc['peak_mib']:.0f}" if mc["ok"] else "failed",
                         f"{1e3 * tm:.4g}" if tm == tm else f"does not fit{cap}",
                         f"{mm['peak_mib']:.0f}" if mm["ok"] else f"does not fit{cap}",
                         f"{tm / tc:.0f}x" if tm == tm else "-",
                         f"{mm['peak_mib'] / mc['peak_mib']:.0f}x" if (mm["ok"] and mc["ok"] and mc["peak_mib"] >= 1) else "-"])
        vrm_out.append({"N": N, "C": C, "closed_s": tv["closed"], "materialised_s": tv.get("materialised"),
                        "closed_mem": mc, "materialised_mem": mm})
        del obj, s, t, y, variants, closed, materialised
    print(common.md_table(["N (=2B)", "C", "closed ms", "closed peak MiB", "materialised ms", "materialised peak MiB",
                           "time ratio", "memory ratio"], vrm_rows))
    for r in vrm_out:
        if not r["materialised_mem"]["ok"]:
            e = r["materialised_mem"]
            print(f"\nN={r['N']} materialised: {e['error']} (after {e.get('seconds', 0):.0f} s)")
    print(f"\n(total {time.perf_counter() - t_all:.0f} s)")
    common.write_json(args.json, {
        "benchmark": "objective", "machine": common.machine_info(device), "command": common.command_line(),
        "times_s": times, "memory": {"|".join(map(str, k)): v for k, v in mem.items()},
        "skipped": [list(c) for c in sorted(skipped)], "vrm_closed_vs_materialised": vrm_out,
    })


if __name__ == "__main__":
    main()
