"""Exact teacher cache: KD training with ``teacher_cache=True`` vs the online teacher (same config).

* per-epoch training time of both (the engine's ``time_s`` / epochs; the cache build is not in it),
  alternated within each repetition;
* cache build time (``TeacherViewCache.build`` after clearing the in-process copy: the teacher over every
  crop/flip view of every training image, at the engine's batch size ``eval_batch_size``);
* break-even = build time / (online epoch - cached epoch), in student-epochs (the cache is reused by
  every student, seed and cacheable method of the process);
* max |cached - online| teacher logits over the first batches of an epoch (exactness check);
* the file store: build + write, and the load that replaces the build in a later process.

Default: resnet20 teacher -> resnet8 student on synthetic 32x32x3 images (crop padding 4 + flips:
162 views per image, as CIFAR and Fashion-MNIST).

    python benchmarks/bench_teacher_cache.py            # full CPU run (~2 min on 1 contended core)
    python benchmarks/bench_teacher_cache.py --quick    # smoke test
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import common
import torch

from akd.data import DeviceLoader, load_dataset, normalize
from akd.engine import RunConfig, teacher_cache, train
from akd.engine.device import autocast, use_channels_last
from akd.engine.seeds import STREAM_DATA, stream_seed
from akd.models import create_model


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="resnet20")
    p.add_argument("--student", default="resnet8")
    p.add_argument("--method", default="kd", help="a cacheable objective: kd, rkd, cc, pkt")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--n", type=int, default=256, help="training images")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed training run")
    p.add_argument("--build-batch", type=int, default=1024, help="batch size of the cache build (the engine's eval_batch_size)")
    p.add_argument("--build-reps", type=int, default=1)
    p.add_argument("--check-batches", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.quick:
        args.n, args.batch, args.epochs, args.reps, args.size = 32, 16, 1, 2, 16
    device = common.setup(args)
    print(f"command: `{common.command_line()}`\n")
    t_all = time.perf_counter()
    spec = common.synthetic_spec(args.n, classes=args.classes, size=args.size, channels=args.channels)
    ds = load_dataset(spec)
    cl = use_channels_last(device, "auto")
    torch.manual_seed(99)
    teacher = create_model(args.teacher, num_classes=ds.num_classes, in_channels=args.channels)
    teacher.to(device=device, memory_format=torch.channels_last if cl else torch.contiguous_format).eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    views = (2 * ds.pad + 1) ** 2 * (2 if ds.flip else 1)

    # ---------------- cache build (same arguments as the engine, so the training runs reuse it)
    build_s = []
    cache = None
    for _ in range(args.build_reps):
        teacher_cache.clear()
        dt, cache = common.timed(lambda: teacher_cache.TeacherViewCache.build(
            teacher, ds.train_x, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, sources={"logits"}, device=device,
            amp="auto", batch_size=args.build_batch, channels_last=cl), device)
        build_s.append(dt)
    print(f"cache build: {views} views x {args.n} images = {views * args.n} teacher image-forwards, "
          f"{common.median(build_s):.1f} s, {cache.nbytes() / 2**20:.1f} MiB")

    # ---------------- the file store: a later process loads the tables instead of building them
    def build_stored(store):
        return lambda: teacher_cache.TeacherViewCache.build(
            teacher, ds.train_x, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, sources={"logits"}, device=device,
            amp="auto", batch_size=args.build_batch, channels_last=cl, store=store)

    with tempfile.TemporaryDirectory(prefix="akd-bench-tviews-") as sd:
        teacher_cache.clear()
        build_store_s, _ = common.timed(build_stored(sd), device)
        teacher_cache.clear()  # as in a new process
        load_s, loaded = common.timed(build_stored(sd), device)
        assert all(torch.equal(loaded.tables[k].cpu(), cache.tables[k].cpu()) for k in cache.tables)
        file_mib = sum(f.stat().st_size for f in Path(sd).glob("*.pt")) / 2**20
    print(f"file store: build + write {build_store_s:.1f} s, load in a later process {load_s:.2f} s ({file_mib:.1f} MiB file)")

    # ---------------- exactness: cached vs online logits of the engine's batches
    loader = DeviceLoader(ds.train_x, ds.train_y, args.batch, device=device, shuffle=True, drop_last=True, augment=True,
                          pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, seed=stream_seed(args.seed, STREAM_DATA))
    max_diff, max_abs = 0.0, 0.0
    with torch.inference_mode():
        for i, (xb, _yb, info) in enumerate(loader.raw_batches(0, with_info=True)):
            if i >= args.check_batches:
                break
            x = normalize(xb, ds.mean, ds.std)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, "auto"):
                online = teacher(x)["logits"]
            cached = cache.lookup(info.index, info.crop)["logits"]
            max_diff = max(max_diff, (online.float() - cached.float()).abs().max().item())
            max_abs = max(max_abs, online.float().abs().max().item())
    print(f"max |cached - online| logits over {min(args.check_batches, len(loader))} batches: {max_diff:.3g} "
          f"(max |logit| {max_abs:.3g})")

    # ---------------- training: online vs cached, alternating
    with tempfile.TemporaryDirectory(prefix="akd-bench-tcache-") as tmpd:
        tmp = Path(tmpd)
        k = [0]

        def run(cached: bool):
            def f():
                k[0] += 1
                cfg = RunConfig(dataset=spec, student=args.student, objective=args.method, epochs=args.epochs,
                                batch_size=args.batch, seed=args.seed, device=str(device), log_every=10**9,
                                eval_batch_size=args.build_batch, teacher_cache=cached)
                logs: list[str] = []
                s = train(cfg, tmp / f"{'c' if cached else 'o'}{k[0]}", progress=False, teacher_module=teacher, data=ds,
                          log=logs.append)
                if cached:
                    assert any("teacher cache:" in m for m in logs), logs
                return s["time_s"] / args.epochs
            return f

        print(f"\n{args.method}: {args.teacher} -> {args.student}, n={args.n}, B={args.batch}, {args.epochs} epochs per run, "
              f"{args.reps} reps (seconds per epoch):")
        t = common.alternate({"online": run(False), "cached": run(True)}, args.reps, device=device)

    on, ca = common.median(t["online"]), common.median(t["cached"])
    b = common.median(build_s)
    saving = on - ca
    breakeven = b / saving if saving > 0 else float("inf")
    steps = args.n // args.batch
    print(f"\n### Exact teacher cache ({args.reps} reps, median; {time.perf_counter() - t_all:.0f} s)\n")
    print(common.md_table(
        ["teacher -> student", "views", "images", "online s/epoch", "cached s/epoch", "cached/online (paired)",
         "build s", "build / online epoch", "break-even student-epochs", "max abs logit diff"],
        [[f"{args.teacher} -> {args.student}", views, args.n, on, ca, f"{common.paired_ratio(t['cached'], t['online']):.3f}",
          b, f"{b / on:.1f}", f"{breakeven:.0f}" if breakeven != float("inf") else "never", f"{max_diff:.2g}"]]))
    print(f"\nfile store: build + write {build_store_s:.1f} s; a later process loads it in {load_s:.2f} s ({file_mib:.1f} MiB), "
          f"{b / max(load_s, 1e-9):.0f}x faster than building")
    print(f"\nper step: online {1e3 * on / steps:.1f} ms, cached {1e3 * ca / steps:.1f} ms; cache "
          f"{cache.nbytes() / args.n / 1024:.1f} KiB per image ({views} views x {args.classes} logits x "
          f"{cache.tables['logits'].element_size()} B)")
    common.write_json(args.json, {"benchmark": "teacher_cache", "machine": common.machine_info(device), "command": common.command_line(),
                                  "times_s_per_epoch": t, "build_s": build_s, "views": views, "max_abs_diff": max_diff,
                                  "break_even_student_epochs": breakeven, "cache_bytes": cache.nbytes(),
                                  "build_and_store_s": build_store_s, "load_s": load_s, "file_mib": file_mib})


if __name__ == "__main__":
    main()
