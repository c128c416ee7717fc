"""Step overhead: akd's engine vs a minimal hand-written PyTorch loop doing the same math.

akd side: ``akd.engine.train`` for one epoch on a fixed synthetic data set; the time is the engine's own
``summary["time_s"]`` (the epoch loop: data order, device-side crop/flip, normalisation, teacher and
student passes, objective, SGD, loss/accuracy accounting; evaluation and checkpointing excluded).

hand side: one epoch of the same work written directly: ``randperm`` order, batched crop/flip on the
device (pad + gather), normalisation, student forward/backward, teacher forward under
``inference_mode``, CE / KD written inline with ``F.cross_entropy`` / ``F.kl_div``, SGD
(momentum 0.9, weight decay 5e-4, ``foreach``; ``fused`` on CUDA, as akd).  For ``vrm`` the hand loop
calls the same objective module and ``akd.data.rand_augment``, so the difference is the engine alone.
Both start from the same initial weights (akd's init stream) and share one frozen teacher.

Reported: images/s of the real batch (steps x B / time) for both, and akd/hand (goal >= 0.95).
``--profile`` also counts the aten ops per training step of both (torch.profiler), which shows the
engine's extra per-step work.

    python benchmarks/bench_step.py                 # full CPU run (~3 min on 1 contended core)
    python benchmarks/bench_step.py --quick         # smoke test
"""

from __future__ import annotations

import collections
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import common
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from akd.data import load_dataset, rand_augment
from akd.engine import RunConfig
from akd.engine.device import autocast, use_channels_last
from akd.engine.seeds import STREAM_INIT, stream_seed
from akd.engine.trainer import train
from akd.models import create_model
from akd.objective import build_objective


@dataclass
class Case:
    name: str
    student: str
    teacher: str
    size: int
    channels: int
    classes: int
    batch: int
    steps: int

    def dataset(self, steps: int | None = None) -> str:
        n = self.batch * (steps or self.steps)
        return common.synthetic_spec(n, classes=self.classes, size=self.size, channels=self.channels)


def make_cases(args) -> list[Case]:
    cases = {
        "cnn": Case("cnn_small<-cnn_wide 28x28x1", "cnn_small", "cnn_wide", 28, 1, 10, args.batch, args.steps_cnn),
        "resnet": Case("resnet8<-resnet20 32x32x3", "resnet8", "resnet20", 32, 3, 10, args.batch, args.steps_resnet),
    }
    return [cases[c] for c in args.cases]


# --------------------------------------------------------------------------------------------
# the two variants
# --------------------------------------------------------------------------------------------
def run_akd(case: Case, method: str, ds, teacher, device, out: Path, seed: int) -> float:
    cfg = RunConfig(dataset=case.dataset(), student=case.student, objective=method, epochs=1, batch_size=case.batch,
                    seed=seed, device=str(device), log_every=10**9, eval_batch_size=1024)
    s = train(cfg, out, force=True, progress=False, teacher_module=teacher if method != "ce" else None, data=ds)
    return float(s["time_s"])


def hand_epoch(case: Case, method: str, ds, teacher, device, seed: int, obj=None) -> float:
    """One epoch of the same training, written as a minimal PyTorch loop; returns its wall time."""
    torch.manual_seed(stream_seed(seed, STREAM_INIT))  # the same initial weights as akd's student
    student = create_model(case.student, num_classes=ds.num_classes, in_channels=ds.in_shape[0])
    cl = use_channels_last(device, "auto")
    fmt = torch.channels_last if cl else torch.contiguous_format
    student.to(device=device, memory_format=fmt).train()
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, **kw)
    x_u8, y = ds.train_x.to(device), ds.train_y.to(device)
    n, (C, H, W) = x_u8.shape[0], ds.in_shape
    B, p = case.batch, ds.pad
    mean = torch.tensor(ds.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, device=device).view(1, -1, 1, 1)
    ar_h, ar_w = torch.arange(H, device=device), torch.arange(W, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    T = 4.0

    common.sync(device)
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=g, device=device)
    for i in range(n // B):
        idx = perm[i * B:(i + 1) * B]
        xb, yb = x_u8[idx], y[idx]
        # batched zero-padded random crop + horizontal flip (one gather)
        dy = torch.randint(0, 2 * p + 1, (B,), generator=g, device=device)
        dx = torch.randint(0, 2 * p + 1, (B,), generator=g, device=device)
        flip = torch.rand(B, generator=g, device=device) < 0.5
        rows = dy[:, None] + ar_h[None]
        cols = dx[:, None] + torch.where(flip[:, None], (W - 1) - ar_w[None], ar_w[None])
        src = (rows[:, :, None] * (W + 2 * p) + cols[:, None, :]).view(B, 1, H * W).expand(B, C, H * W)
        xb = F.pad(xb, (p, p, p, p)).view(B, C, -1).gather(2, src).view(B, C, H, W)
        x = (xb.float() / 255.0 - mean) / std
        if method == "vrm":
            xv = rand_augment(xb, g, num_ops=2, magnitude=9)
            x = torch.cat([x, (xv.float() / 255.0 - mean) / std])
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        t_out = None
        if method != "ce":
            with autocast(device, "auto"), torch.inference_mode():
                t_out = teacher(x)
        with autocast(device, "auto"):
            out = student(x)
            if method == "ce":
                loss = F.cross_entropy(out["logits"].float(), yb)
            elif method == "kd":
                s, t = out["logits"].float(), t_out["logits"].float()
                loss = 0.1 * F.cross_entropy(s, yb) + 0.9 * T * T * F.kl_div(
                    F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1), reduction="batchmean", log_target=True)
            else:
                loss = obj(out, t_out, yb, batch_size=B)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    common.sync(device)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# optional: aten ops per step (profiler)
# --------------------------------------------------------------------------------------------
def op_counts(fn) -> collections.Counter:
    from torch.profiler import ProfilerActivity, profile

    with common.quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    cnt: collections.Counter = collections.Counter()
    for e in prof.events():
        if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")):
            cnt[e.name] += 1  # top-level aten calls only (not the ops a composite op calls internally)
    return cnt


class _HostDataToDevice(TorchFunctionMode):
    """Counts tensors created from Python data with an explicit ``device=`` (torch.tensor / torch.as_tensor /
    Tensor.new_tensor) by akd call site.  On CUDA each one is a pageable host-to-device copy, which PyTorch
    does with ``cudaMemcpyAsync`` + ``cudaStreamSynchronize`` (a host sync) unless non_blocking."""

    def __init__(self):
        super().__init__()
        self.sites: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        hit = False
        if func in (torch.tensor, torch.as_tensor) and kwargs.get("device") is not None and args \
                and not isinstance(args[0], torch.Tensor):
            hit = True
        elif func is torch.Tensor.new_tensor:
            hit = True
        if hit:
            import traceback

            frames = [f for f in traceback.extract_stack()[:-1] if "/akd/" in f.filename]
            f = frames[-1] if frames else None
            self.sites[f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} ({f.name})" if f else "benchmark"] += 1
        return func(*args, **kwargs)


def host_data_sites(fn) -> collections.Counter:
    mode = _HostDataToDevice()
    with mode:
        fn()
    return mode.sites


def profile_case(case: Case, methods, teacher, device, tmp: Path, seed: int, steps: int) -> None:
    """Top-level aten calls per step: (count over a 2S-step epoch - count over an S-step epoch) / S, so that
    the fixed per-run work (model init, digests, evaluation, checkpoint) cancels."""
    import dataclasses

    S = steps
    c1, c2 = dataclasses.replace(case, steps=S), dataclasses.replace(case, steps=2 * S)
    d1, d2 = load_dataset(c1.dataset()), load_dataset(c2.dataset())
    print(f"\n### aten ops per training step (top-level calls, torch.profiler): {case.name}, B={case.batch}\n")
    rows, diffs = [], []
    for m in methods:
        obj = build_objective("vrm").to(device) if m == "vrm" else None
        a1 = op_counts(lambda m=m: run_akd(c1, m, d1, teacher, device, tmp / f"prof1-{m}", seed))
        a2 = op_counts(lambda m=m: run_akd(c2, m, d2, teacher, device, tmp / f"prof2-{m}", seed))
        h1 = op_counts(lambda m=m, obj=obj: hand_epoch(c1, m, d1, teacher, device, seed, obj))
        h2 = op_counts(lambda m=m, obj=obj: hand_epoch(c2, m, d2, teacher, device, seed, obj))
        a = {k: (a2[k] - a1[k]) / S for k in set(a1) | set(a2)}
        h = {k: (h2[k] - h1[k]) / S for k in set(h1) | set(h2)}
        an, hn = sum(a.values()), sum(h.values())
        rows.append([m, an, hn, an - hn])
        d = {k: a.get(k, 0.0) - h.get(k, 0.0) for k in set(a) | set(h)}
        top = sorted(d.items(), key=lambda kv: -kv[1])[:10]
        diffs.append([m, ", ".join(f"{k[6:]} {v:+.0f}" for k, v in top if v >= 0.5)])
    print(common.md_table(["method", "akd ops/step", "hand ops/step", "extra ops/step"], rows))
    print()
    print(common.md_table(["method", "largest extra top-level ops per step (akd - hand)"], diffs))
    print("\n### akd: tensors made from Python data on the training device, per training step, by call site\n")
    print("(each is a blocking host-to-device copy, i.e. a host sync, when the device is CUDA)\n")
    hrows = []
    for m in methods:
        a1 = host_data_sites(lambda m=m: run_akd(c1, m, d1, teacher, device, tmp / f"h2d1-{m}", seed))
        a2 = host_data_sites(lambda m=m: run_akd(c2, m, d2, teacher, device, tmp / f"h2d2-{m}", seed))
        per = {k: (a2[k] - a1[k]) / S for k in set(a1) | set(a2)}
        per = {k: v for k, v in per.items() if v > 0}
        hrows += [[m, k, f"{v:.1f}"] for k, v in sorted(per.items(), key=lambda kv: -kv[1])] or [[m, "none", "0"]]
    print(common.md_table(["method", "call site", "per step"], hrows))


# --------------------------------------------------------------------------------------------
def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=["cnn", "resnet"], choices=["cnn", "resnet"])
    p.add_argument("--methods", nargs="+", default=["ce", "kd", "vrm"], choices=["ce", "kd", "vrm"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps-cnn", type=int, default=16, help="steps per epoch (data set = steps x batch images)")
    p.add_argument("--steps-resnet", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="also count aten ops per step (akd vs hand)")
    p.add_argument("--profile-steps", type=int, default=4, help="S of the profiled epochs (S and 2S steps)")
    p.set_defaults(reps=5)
    args = p.parse_args()
    if args.quick:
        args.steps_cnn, args.steps_resnet, args.reps = 3, 2, 2
    device = common.setup(args)
    print(f"command: `{common.command_line()}`\n")
    results = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="akd-bench-step-") as tmpd:
        tmp = Path(tmpd)
        for case in make_cases(args):
            ds = load_dataset(case.dataset())
            torch.manual_seed(1234)
            teacher = create_model(case.teacher, num_classes=ds.num_classes, in_channels=ds.in_shape[0])
            cl = use_channels_last(device, "auto")
            teacher.to(device=device, memory_format=torch.channels_last if cl else torch.contiguous_format).eval()
            for q in teacher.parameters():
                q.requires_grad_(False)
            print(f"## {case.name}: B={case.batch}, {case.steps} steps/epoch ({ds.train_x.shape[0]} images)")
            for m in args.methods:
                obj = build_objective("vrm").to(device) if m == "vrm" else None
                k = [0]

                def akd_v(m=m, case=case, ds=ds, teacher=teacher, k=k):
                    k[0] += 1
                    return run_akd(case, m, ds, teacher, device, tmp / f"{case.student}-{m}-{k[0]}", args.seed)

                def hand_v(m=m, obj=obj, case=case, ds=ds, teacher=teacher):
                    return hand_epoch(case, m, ds, teacher, device, args.seed, obj)

                print(f"{m}:")
                t = common.alternate({"akd": akd_v, "hand": hand_v}, args.reps, device=device)
                imgs = case.steps * case.batch
                ta, th = common.median(t["akd"]), common.median(t["hand"])
                results.append({
                    "case": case.name, "method": m, "batch": case.batch, "steps": case.steps,
                    "akd_img_s": imgs / ta, "hand_img_s": imgs / th, "ratio_of_medians": th / ta,
                    "ratio_paired": common.paired_ratio(t["hand"], t["akd"]),
                    "akd_ms_step": 1e3 * ta / case.steps, "hand_ms_step": 1e3 * th / case.steps,
                    "spread_akd": common.spread(t["akd"]), "spread_hand": common.spread(t["hand"]),
                    "akd_s": t["akd"], "hand_s": t["hand"],
                })
            if args.profile:
                profile_case(case, args.methods, teacher, device, tmp, args.seed, args.profile_steps)
    print(f"\n### Step overhead: akd engine vs hand-written loop ({args.reps} reps, median; "
          f"{time.perf_counter() - t_all:.0f} s)\n")
    rows = [[r["case"], r["method"], r["batch"], r["steps"], r["akd_ms_step"], r["hand_ms_step"], r["akd_img_s"], r["hand_img_s"],
             f"{r['ratio_of_medians']:.3f}", f"{r['ratio_paired']:.3f}", f"{r['spread_akd']} / {r['spread_hand']}"] for r in results]
    print(common.md_table(["case", "method", "B", "steps", "akd ms/step", "hand ms/step", "akd img/s", "hand img/s",
                           "akd/hand (medians)", "akd/hand (paired median)", "spread akd / hand"], rows))
    print("\nakd/hand = throughput ratio (goal >= 0.95); 'paired' = median over reps of hand_time/akd_time measured "
          "side by side.")
    common.write_json(args.json, {"benchmark": "step", "machine": common.machine_info(device), "command": common.command_line(),
                                  "results": results})


if __name__ == "__main__":
    main()
