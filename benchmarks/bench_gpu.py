"""GPU throughput: akd (device-resident pipeline, bf16, channels_last) vs an mdistiller-style training loop.

akd: ``akd.engine.train`` for one epoch (``summary["time_s"]``: the training loop, evaluation and
checkpointing excluded) with ``kd`` and with ``vrm`` (one RandAugment view: the student and teacher see
2B images per step), resnet32x4 -> resnet8x4, B = 64, on CIFAR-100 when akd finds it, otherwise on
CIFAR-shaped synthetic data (50,000 images 32x32x3, 100 classes).

baseline (mdistiller's ``BaseTrainer`` + ``get_cifar100_dataloaders``, written out without torchvision):
a ``torch.utils.data.DataLoader`` over the uint8 images (``shuffle=True``, ``num_workers`` = 2 as
mdistiller's default, no pinned memory) whose ``__getitem__`` does the per-sample CPU augmentation
(zero-padded random crop 32/4, horizontal flip, to float, normalise); on the GPU, fp32, no
channels_last, no compile: teacher forward under ``no_grad`` every step, student forward, 0.1 CE +
0.9 KD (T = 4), backward, ``torch.optim.SGD``, and the per-step bookkeeping mdistiller does
(``loss.cpu()``, top-1/top-5 accuracy).  Timed over the whole epoch including worker start-up.

Reported: images/s (real images per second), akd / baseline (goal >= 5x), and the projected training
wall time of the 240-epoch recipe at 50,000 images/epoch (goal: VRM <= 15 min on one H100).
``--sync-debug`` counts the host synchronisations of akd's training steps by call site
(``torch.cuda.set_sync_debug_mode``).

    python benchmarks/bench_gpu.py                               # on a GPU machine
    python benchmarks/bench_gpu.py --device cpu --quick          # smoke test of the script on a CPU
"""

from __future__ import annotations

import collections
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import common
import numpy as np
import torch
import torch.nn.functional as F

from akd.data import load_dataset
from akd.engine import RunConfig, train
from akd.engine.trainer import RunInterrupted
from akd.errors import AkdError
from akd.models import create_model

RECIPE_EPOCHS, RECIPE_IMAGES = 240, 50_000


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def get_data(spec: str, n: int, classes: int, test_n: int = 1000):
    """CIFAR-100 (``n`` training images) when ``spec`` is 'auto' and akd finds it on disk, else synthetic."""
    if spec == "auto":
        cifar = "cifar100(download=False)" if n >= RECIPE_IMAGES else f"cifar100(download=False,train_n={n})"
        try:
            return load_dataset(cifar), cifar
        except (AkdError, OSError) as e:
            print(f"(cifar100 not available: {str(e).splitlines()[0][:120]}; using synthetic data)")
            spec = common.synthetic_spec(n, classes=classes, size=32, channels=3, test_n=test_n)
    return load_dataset(spec), spec


class CpuAugmentDataset(torch.utils.data.Dataset):
    """Per-sample CPU augmentation (what torchvision's RandomCrop(32, 4) + flip + ToTensor + Normalize do)."""

    def __init__(self, x_u8: torch.Tensor, y: torch.Tensor, mean, std, pad: int = 4):
        self.x = x_u8.permute(0, 2, 3, 1).contiguous().numpy()  # HWC uint8, like CIFAR's .data
        self.y = y.numpy()
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        self.pad = pad

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        img = self.x[i]
        h, w, _ = img.shape
        p = self.pad
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        dy, dx = np.random.randint(0, 2 * p + 1, size=2)
        img = padded[dy:dy + h, dx:dx + w]
        if np.random.rand() < 0.5:
            img = img[:, ::-1]
        x = (np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(x), int(self.y[i]), i


def accuracy(output: torch.Tensor, target: torch.Tensor, topk=(1,)):
    """mdistiller.engine.utils.accuracy."""
    with torch.no_grad():
        maxk = max(topk)
        batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.reshape(1, -1).expand_as(pred))
        return [correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size) for k in topk]


def baseline_epoch(ds, teacher_state, args, device) -> float:
    """One epoch of the mdistiller-style KD loop; returns its wall time (worker start-up included)."""
    torch.manual_seed(0)
    student = create_model(args.student, num_classes=ds.num_classes).to(device).train()
    teacher = create_model(args.teacher, num_classes=ds.num_classes)
    teacher.load_state_dict(teacher_state)
    teacher.to(device).eval()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(CpuAugmentDataset(ds.train_x, ds.train_y, ds.mean, ds.std, ds.pad),
                                         batch_size=args.batch, shuffle=True, num_workers=args.workers)
    T, losses, top1 = 4.0, [], []
    common.sync(device)
    t0 = time.perf_counter()
    for image, target, index in loader:
        opt.zero_grad()
        image = image.float().to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        index = index.to(device, non_blocking=True)
        logits_student = student(image)["logits"]
        with torch.no_grad():
            logits_teacher = teacher(image)["logits"]
        loss_ce = 0.1 * F.cross_entropy(logits_student, target)
        log_s = F.log_softmax(logits_student / T, dim=1)
        p_t = F.softmax(logits_teacher / T, dim=1)
        loss_kd = 0.9 * (F.kl_div(log_s, p_t, reduction="none").sum(1).mean() * T * T)
        loss = loss_ce + loss_kd
        loss.backward()
        opt.step()
        acc1, _acc5 = accuracy(logits_student, target, topk=(1, 5))
        losses.append(loss.cpu().detach().numpy().mean())  # host sync every step, as mdistiller
        top1.append(acc1[0])
    common.sync(device)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# akd
# --------------------------------------------------------------------------------------------
def akd_cfg(args, method: str, spec: str, device, ckpt: Path) -> RunConfig:
    return RunConfig(dataset=spec, student=args.student, teacher_ckpt=str(ckpt), objective=method, epochs=1,
                     batch_size=args.batch, seed=0, device=str(device), log_every=50, eval_batch_size=1024,
                     amp=args.amp, channels_last=args.channels_last, compile=args.compile)


def sync_sites(args, method: str, ds, spec: str, device, ckpt: Path, tmp: Path, steps: int) -> list[tuple[str, float]]:
    """Host syncs per training step of akd by call site: (count over 2S steps - count over S steps) / S."""
    def count(n_steps: int, out: Path) -> collections.Counter:
        sites: collections.Counter = collections.Counter()
        old_show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if "synchroniz" in str(message).lower():
                st = [f for f in traceback.extract_stack()[:-1] if "/akd/" in f.filename or f.filename.endswith("bench_gpu.py")]
                where = next((f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} ({f.name})"
                              for f in reversed(st) if "/akd/" in f.filename), "?")
                sites[where] += 1
            else:
                old_show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = show
                try:
                    train(akd_cfg(args, method, spec, device, ckpt), out, progress=False, data=ds, stop_after_steps=n_steps)
                except RunInterrupted:
                    pass
        finally:
            torch.cuda.set_sync_debug_mode(0)
            warnings.showwarning = old_show
        return sites

    a = count(steps, tmp / f"sync1-{method}")
    b = count(2 * steps, tmp / f"sync2-{method}")
    per = {k: (b[k] - a[k]) / steps for k in set(a) | set(b)}
    return sorted(((k, v) for k, v in per.items() if abs(v) > 1e-9), key=lambda kv: -kv[1])


# --------------------------------------------------------------------------------------------
def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="auto", help="'auto' (cifar100 if found, else synthetic) or a dataset spec")
    p.add_argument("--images", type=int, default=RECIPE_IMAGES, help="training images per timed epoch")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--test-n", type=int, default=1000, help="synthetic test images (evaluation is not timed)")
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--methods", nargs="+", default=["kd", "vrm"])
    p.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers (mdistiller's default: 2)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"], help="akd's amp setting")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--compile", action="store_true", help="akd with torch.compile")
    p.add_argument("--sync-debug", action="store_true", help="count akd's host syncs per step by call site (CUDA)")
    args = p.parse_args()
    if args.quick:
        args.images, args.reps, args.batch, args.test_n = 64, 1, 16, 64
        args.teacher = "resnet8" if args.device == "cpu" or not torch.cuda.is_available() else args.teacher
        args.student = "resnet8" if args.teacher == "resnet8" else args.student
    device = common.setup(args)
    if device.type != "cuda":
        print("NOTE: not a GPU run: the numbers below only show that the script works.\n")
    print(f"command: `{common.command_line()}`\n")
    t_all = time.perf_counter()
    ds, spec = get_data(args.dataset, args.images, args.classes, args.test_n)
    n = ds.train_x.shape[0]
    steps = n // args.batch
    torch.manual_seed(1)
    teacher = create_model(args.teacher, num_classes=ds.num_classes)
    from akd.engine.trainer import save_model

    results: dict[str, list[float]] = {}
    syncs: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="akd-bench-gpu-") as tmpd:
        tmp = Path(tmpd)
        ckpt = tmp / "teacher.pt"
        save_model(ckpt, teacher, args.teacher, ds, 0.0)
        k = [0]

        def akd_variant(method: str):
            def f():
                k[0] += 1
                s = train(akd_cfg(args, method, spec, device, ckpt), tmp / f"{method}-{k[0]}", progress=False, data=ds)
                return s["time_s"]
            return f

        variants = {f"akd {m}": akd_variant(m) for m in args.methods}
        if not args.no_baseline:
            state = teacher.state_dict()
            variants["baseline kd"] = lambda: baseline_epoch(ds, state, args, device)
        print(f"{args.teacher} -> {args.student}, {spec}, B={args.batch}, {steps} steps/epoch, {args.reps} reps:")
        results = common.alternate(variants, args.reps, device=device)
        if args.sync_debug:
            if device.type != "cuda":
                print("(--sync-debug needs CUDA: skipped)")
            else:
                for m in args.methods:
                    syncs[m] = sync_sites(args, m, ds, spec, device, ckpt, tmp, steps=min(20, max(1, steps // 4)))

    imgs = steps * args.batch
    base = results.get("baseline kd")
    rows = []
    for name, xs in results.items():
        med = common.median(xs)
        ips = imgs / med
        proj = RECIPE_EPOCHS * RECIPE_IMAGES / ips
        rows.append([name, 1e3 * med / steps, ips, f"{common.paired_ratio(base, xs):.2f}x" if base and name != "baseline kd" else "-",
                     f"{proj / 60:.1f} min ({proj / 3600:.2f} h)", common.spread(xs)])
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n### Throughput on {dev_name} (median of {args.reps} reps; {time.perf_counter() - t_all:.0f} s)\n")
    print(common.md_table(["variant", "ms/step", "img/s", "akd / baseline (paired)", "projected 240 x 50k images", "spread"], rows))
    print("\nGoals: akd >= 5x the baseline; VRM 240 epochs <= 15 min on one H100 (training time only, no evaluation).")
    if syncs:
        print("\n### Host synchronisations per akd training step, by call site (torch.cuda.set_sync_debug_mode)\n")
        srows = [[m, site, f"{v:.2f}"] for m, lst in syncs.items() for site, v in lst] or [["-", "none", "0"]]
        print(common.md_table(["method", "call site", "syncs/step"], srows))
    common.write_json(args.json, {"benchmark": "gpu", "machine": common.machine_info(device), "command": common.command_line(),
                                  "dataset": spec, "steps": steps, "batch": args.batch, "times_s": results,
                                  "sync_sites": syncs})


if __name__ == "__main__":
    main()
