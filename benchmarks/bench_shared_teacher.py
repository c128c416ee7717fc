"""Shared-teacher grid: per-student cost of K KD students trained together (one teacher forward per batch).

Variants, alternated within each repetition, all one epoch of the same synthetic data, same seed:

* ``ce``   -- one student alone with plain CE (no teacher): the goal's baseline;
* ``kd``   -- one KD student alone with the teacher (what a student pays without sharing);
* ``K=k``  -- ``akd.engine.trainer.train_shared`` with k KD students (same seed, so the same batches;
  different objectives: KD with different KD weights, or kd/rkd/cc/pkt with ``--mix``): per-student
  cost = sum of the lanes' ``time_s`` / k (= the wall time of the shared epoch loop / k).

Times are the engine's ``time_s`` (training loop only; evaluation and checkpoints excluded).  Goal:
per-student cost / CE-alone <= 1.2.  The teacher is resnet32x4 and the student resnet8x4 (the CIFAR-100
pair of the KD literature) on small synthetic images (default 16x16x3, 100 classes) so that it fits a
CPU; the measured teacher-forward / student-step cost ratio is reported next to the multiply-accumulate
ratio at 32x32 (teacher forward / (3 x student forward)), which is what it approximates on a GPU.

    python benchmarks/bench_shared_teacher.py            # full CPU run (~2.5 min on 1 contended core)
    python benchmarks/bench_shared_teacher.py --quick    # smoke test
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import common
import torch

from akd.data import load_dataset
from akd.engine import RunConfig, train
from akd.engine.device import use_channels_last
from akd.engine.loop import save_model
from akd.engine.trainer import train_shared
from akd.models import create_model


def kd_weighted(w: float) -> dict:
    return {"name": f"kd-w{w:g}", "terms": [{"loss": "ce", "weight": 0.1}, {"loss": "kd(t=4.0)", "weight": w, "name": "kd"}]}


def student_objectives(k: int, mix: bool) -> list:
    if mix:
        base = ["kd", "rkd", "cc", "pkt"]
        return [base[i % 4] if i < 4 else {"method": base[i % 4], "name": f"{base[i % 4]}-{i}",
                                           "terms": [{"loss": "ce", "weight": 0.01 * i, "name": "ce-extra"}]}
                for i in range(k)]
    return [kd_weighted(round(0.9 - 0.05 * i, 2)) for i in range(k)]


def cost_ratio(args, device, ds, reps: int) -> dict:
    """Teacher forward (inference) vs student step (fwd+bwd+SGD) at the benchmark's B, side by side."""
    cl = use_channels_last(device, "auto")
    fmt = torch.channels_last if cl else torch.contiguous_format
    t = create_model(args.teacher, num_classes=ds.num_classes).to(device, memory_format=fmt).eval()
    s = create_model(args.student, num_classes=ds.num_classes).to(device, memory_format=fmt).train()
    opt = torch.optim.SGD(s.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, ds.num_classes, (args.batch,), device=device)
    from akd.engine.device import autocast

    def teacher_fwd():
        with autocast(device, "auto"), torch.inference_mode():
            t(x)

    def student_step():
        with autocast(device, "auto"):
            loss = torch.nn.functional.cross_entropy(s(x)["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    r = common.alternate({"teacher_fwd": teacher_fwd, "student_step": student_step}, reps, device=device, log=None)
    macs = {}
    for size in sorted({args.size, 32}):
        mt = common.count_macs(create_model(args.teacher, num_classes=ds.num_classes), (3, size, size))
        ms = common.count_macs(create_model(args.student, num_classes=ds.num_classes), (3, size, size))
        macs[size] = {"teacher_gmacs": mt / 1e9, "student_gmacs": ms / 1e9, "ratio_fwd_over_3fwd": mt / (3 * ms)}
    return {"teacher_fwd_s": r["teacher_fwd"], "student_step_s": r["student_step"],
            "measured_ratio": common.paired_ratio(r["teacher_fwd"], r["student_step"]), "macs": macs}


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--size", type=int, default=16, help="synthetic image side (32 = CIFAR)")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=12, help="steps per epoch (data set = steps x batch images)")
    p.add_argument("--ks", nargs="+", type=int, default=[4, 8], help="numbers of students trained together")
    p.add_argument("--mix", action="store_true", help="students use kd/rkd/cc/pkt (default: KD with different weights)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.quick:
        args.batch, args.steps, args.reps = 16, 2, 1
    device = common.setup(args)
    print(f"command: `{common.command_line()}`\n")
    t_all = time.perf_counter()
    spec = common.synthetic_spec(args.batch * args.steps, classes=args.classes, size=args.size, channels=3)
    ds = load_dataset(spec)

    ratio = cost_ratio(args, device, ds, max(args.reps, 3))
    print(f"teacher fwd / student step, measured at B={args.batch} {args.size}x{args.size}: {ratio['measured_ratio']:.2f}")

    lanes_log: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="akd-bench-shared-") as tmpd:
        tmp = Path(tmpd)
        torch.manual_seed(4321)
        teacher = create_model(args.teacher, num_classes=ds.num_classes, in_channels=3)
        ckpt = tmp / "teacher" / "model.pt"
        ckpt.parent.mkdir()
        save_model(ckpt, teacher, args.teacher, ds, 0.0)
        base = dict(dataset=spec, student=args.student, epochs=1, batch_size=args.batch, seed=args.seed,
                    device=str(device), log_every=10**9, eval_batch_size=256)
        counter = [0]

        def out(tag: str) -> Path:
            counter[0] += 1
            return tmp / f"{tag}-{counter[0]}"

        def ce():
            return train(RunConfig(**base, objective="ce"), out("ce"), progress=False, data=ds)["time_s"]

        def kd():
            return train(RunConfig(**base, objective="kd", teacher_ckpt=str(ckpt)), out("kd"), progress=False, data=ds)["time_s"]

        def shared(k: int):
            def run():
                d = out(f"K{k}")
                cfgs = [RunConfig(**base, objective=o, teacher_ckpt=str(ckpt)) for o in student_objectives(k, args.mix)]
                sums = train_shared(cfgs, [d / f"s{i}" for i in range(k)], progress=False)
                assert all(s["status"] == "finished" for s in sums), [s["status"] for s in sums]
                lanes = [s["time_s"] for s in sums]
                lanes_log.setdefault(f"K={k}", []).append(lanes)
                return sum(lanes) / k
            return run

        variants = {"ce": ce, "kd": kd, **{f"K={k}": shared(k) for k in args.ks}}
        print(f"\n{args.teacher} -> {args.student}, {args.size}x{args.size}x3, {args.classes} classes, B={args.batch}, "
              f"{args.steps} steps/epoch, {args.reps} reps:")
        t = common.alternate(variants, args.reps, device=device)

    ce_m = common.median(t["ce"])
    rows = []
    for name, xs in t.items():
        m = common.median(xs)
        per_ce = common.paired_ratio(xs, t["ce"])
        rows.append([name, 1e3 * m / args.steps, args.batch * args.steps / m, f"{per_ce:.2f}",
                     f"{common.paired_ratio(xs, t['kd']):.2f}", common.spread(xs)])
    print(f"\n### Shared teacher: per-student training cost (median of {args.reps} reps; {time.perf_counter() - t_all:.0f} s)\n")
    print(common.md_table(["variant", "ms per student-step", "student img/s", "/ CE alone (paired)", "/ KD alone (paired)",
                           "spread"], rows))
    print("\nGoal: K-student per-student cost / CE alone <= 1.2.  KD alone / CE alone is what a student pays without sharing.")
    m = ratio["macs"]
    print("\n### Teacher/student cost ratio\n")
    crow = [[f"measured here ({device.type}, B={args.batch}, {args.size}x{args.size})", 1e3 * common.median(ratio["teacher_fwd_s"]),
             1e3 * common.median(ratio["student_step_s"]), f"{ratio['measured_ratio']:.2f}"]]
    for size, v in m.items():
        crow.append([f"MACs at {size}x{size}: teacher fwd / (3 x student fwd)", f"{v['teacher_gmacs']:.3f} GMAC",
                     f"3 x {v['student_gmacs']:.3f} GMAC", f"{v['ratio_fwd_over_3fwd']:.2f}"])
    print(common.md_table(["", "teacher fwd", "student step", "ratio"], crow))
    if lanes_log:
        print("\n### Per-lane time_s inside one shared run (last rep): the engine's own split of the shared epoch\n")
        lrows = [[k, ", ".join(f"{x:.2f}" for x in v[-1]), f"{v[-1][0] / common.median(v[-1][1:]):.2f}" if len(v[-1]) > 1 else "-"]
                 for k, v in lanes_log.items()]
        print(common.md_table(["variant", "lane time_s (s)", "lane 0 / median other lane"], lrows))
    common.write_json(args.json, {"benchmark": "shared_teacher", "machine": common.machine_info(device),
                                  "command": common.command_line(), "times_s": t, "lanes_time_s": lanes_log,
                                  "cost_ratio": ratio, "ce_median_s": ce_m})


if __name__ == "__main__":
    main()
