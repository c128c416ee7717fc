"""The one shared training engine: teachers, student baselines and distilled students alike.

Plain training is the ``ce`` objective.  One step = device-resident batch (uint8) →
normalised real view (+ virtual views when the objective reads them) → student (and frozen
teacher under inference mode) with named taps → objective → backward → SGD.

* No host synchronisation inside a step on CUDA: loss sums, accuracy counts and the
  non-finite flags accumulate on the device and are read once per ``log_every`` steps and
  at the end of each epoch (on CPU a read is free, so they are checked every step).
* Randomness comes from independent streams derived from (seed, epoch[, step]): student
  init (``init``), data order + crop/flip (``data``), virtual views (``view``).  Nothing
  depends on the global RNG, so a resumed run is bit-identical on CPU and two methods with
  the same seed see the same initial weights and the same batches.
* Checkpoints (model, optimiser, scheduler, epoch/step, partial-epoch sums, history, RNG
  states) are written atomically at every epoch end and on SIGINT/SIGTERM after the
  current step; ``resume`` continues from them exactly.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import normalize, rand_augment, train_loader
from ..errors import AkdError, ConfigError, TrainingDiverged
from ..models import create_model
from ..objective import Objective, build_objective
from .checkpoint import atomic_write_text, load_checkpoint, save_checkpoint, weights_digest, write_json
from .config import RunConfig
from .metrics import Accumulator, evaluate
from .runs import RunDir, check_same_teacher, describe_name
from .device import autocast, resolve_device, use_channels_last
from . import teacher_cache
from .environment import environment
from .progress import Progress
from .signals import EXIT_INTERRUPTED, StopFlag


class RunInterrupted(AkdError):
    """SIGINT/SIGTERM: the run stopped after a step and saved a checkpoint."""

    exit_code = EXIT_INTERRUPTED


def stream_seed(*parts: int) -> int:
    """A 63-bit seed for an independent random stream named by integers (splitmix64 mixing)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF


STREAM_INIT, STREAM_DATA, STREAM_VIEW = 1, 2, 3



class LocalRuntime:
    """The single-process runtime: what the training loop asks of the process group when there is none.

    The loop talks to a runtime for everything that differs under DDP: which rows of the batch are this
    process's (:meth:`shard`), where relations are computed (:meth:`objective`), how running means and stop
    requests are agreed on (:meth:`accumulator`, :meth:`stop_flag`, :meth:`sync_stop`), how the test set is
    evaluated, and whether this process writes run files (:attr:`writer`).  Here every answer is the plain
    single-process one; :class:`akd.engine.distributed.Runtime` answers the same questions for rank r of N.
    """

    rank, world_size = 0, 1

    @property
    def writer(self) -> bool:
        """Only rank 0 writes run files (config, metrics, summary, checkpoints, model)."""
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        return {}

    def shard(self, xs: list[torch.Tensor], yb: torch.Tensor, info: Any = None):
        return xs, yb, info

    def objective(self, objective: Objective, s_out, t_out, yb: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
        return objective(s_out, t_out, yb, batch_size=batch)

    def accumulator(self, names: list[str], device: torch.device) -> Accumulator:
        return Accumulator(names, device)

    def stop_flag(self) -> StopFlag:
        return StopFlag()

    def sync_stop(self, stop: StopFlag) -> None:
        pass

    def evaluate(self, model, x_u8, y, mean, std, **kw) -> dict[str, float]:
        return evaluate(model, x_u8, y, mean, std, **kw)


LOCAL = LocalRuntime()


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What the engine resolved: device, data, models, objective (exposed for tests/benchmarks)."""

    cfg: RunConfig
    device: torch.device
    data: Any
    student: torch.nn.Module
    teacher: torch.nn.Module | None
    objective: Objective
    teacher_info: dict[str, Any] = field(default_factory=dict)
    init_digest: str = ""


def state_digest(model: torch.nn.Module) -> str:
    """Digest of a model's weights (to show that runs started from identical weights)."""
    return weights_digest(model.state_dict())


def data_digest(loader: Any, epoch: int = 0) -> str:
    """SHA-1 of an epoch's sample order and first batch's crop/flip draws (equal data order across runs)."""
    h = hashlib.sha1(loader.order(epoch).cpu().numpy().tobytes())
    for xb, _ in loader.raw_batches(epoch):
        h.update(xb.cpu().numpy().tobytes())
        break
    return h.hexdigest()[:16]


def check_taps(model: torch.nn.Module, sources: set[str], who: str, spec: str) -> None:
    taps = set(getattr(model, "taps", ("logits", "pooled", "map")))
    missing = sorted(sources - taps)
    if missing:
        raise ConfigError(f"{who} model '{spec}' does not provide representation(s) {', '.join(missing)} (it has: {', '.join(sorted(taps))})")


def build_context(cfg: RunConfig, *, log: Callable[[str], None] = print, teacher_module: torch.nn.Module | None = None,
                  data: Any = None, progress: bool = True) -> Context:
    """Resolve device, data, objective, student and teacher; validate everything before training starts."""
    from .preflight import check_data_and_teacher
    from .teacher import resolve_teacher

    cfg.validate()
    device = resolve_device(cfg.device)
    objective = build_objective(cfg.objective)
    ds = check_data_and_teacher(cfg, data)  # batch size, taps, step memory: before any teacher is trained
    in_ch = ds.in_shape[0]
    torch.manual_seed(stream_seed(cfg.seeds()["init"], STREAM_INIT))
    student = create_model(cfg.student, num_classes=ds.num_classes, in_channels=in_ch)
    init_digest = state_digest(student)
    check_taps(student, objective.student_sources(), "student", cfg.student)
    teacher, info = None, {}
    if objective.needs_teacher:
        if teacher_module is not None:
            teacher, info = teacher_module, {"teacher": "given", "teacher_digest": state_digest(teacher_module)}
        else:
            teacher, info = resolve_teacher(cfg, ds, train=train, log=log, progress=progress)
        check_taps(teacher, objective.teacher_sources(), "teacher", cfg.teacher or str(cfg.teacher_ckpt))
    cl = use_channels_last(device, cfg.channels_last)
    fmt = torch.channels_last if cl else torch.contiguous_format
    student.to(device=device, memory_format=fmt)
    if teacher is not None:
        teacher.to(device=device, memory_format=fmt).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    objective.to(device)
    return Context(cfg, device, ds, student, teacher, objective, info, init_digest)


def make_optimizer(cfg: RunConfig, model: torch.nn.Module, device: torch.device):
    kw: dict[str, Any] = {}
    if device.type == "cuda":
        kw["fused"] = True
    else:
        kw["foreach"] = True
    opt = torch.optim.SGD(model.parameters(), lr=cfg.resolved_lr(), momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, **kw)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.resolved_milestones(), gamma=cfg.lr_decay)
    return opt, sched


def virtual_views(x_u8: torch.Tensor, k: int, cfg: RunConfig, view_seed: int, epoch: int, step: int) -> list[torch.Tensor]:
    """k RandAugment views (``cfg.ra_ops`` ops of magnitude ``cfg.ra_magnitude`` from ``cfg.ra_pool``) of ``x_u8``: the
    cropped/flipped real batch (``view_base = "crop"``) or the stored images (``"original"``); (view, epoch, step) stream."""
    g = torch.Generator(device=x_u8.device)
    g.manual_seed(stream_seed(view_seed, STREAM_VIEW, epoch, step))
    return [rand_augment(x_u8, g, num_ops=cfg.ra_ops, magnitude=cfg.ra_magnitude, ops=cfg.ra_pool) for _ in range(k)]


def train(cfg: RunConfig, out: str | Path, *, resume: bool = False, force: bool = False, progress: bool = True,
          log: Callable[[str], None] | None = None, teacher_module: torch.nn.Module | None = None,
          data: Any = None, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train one run into ``out`` and return its summary (also ``out/summary.json``).

    A finished run is not redone (its summary is returned).  ``stop_after_steps`` (tests)
    behaves like a SIGTERM after that many steps of this call.
    """
    log = log or (lambda m: None)
    rd = RunDir(out)
    cfg = rd.resolve(cfg, resume=resume, force=force)
    prev = rd.read_summary()
    same = not force and rd.holds(cfg)
    if same and prev and teacher_module is None:
        from .teacher import teacher_file_digest

        check_same_teacher(rd, prev, teacher_file_digest(cfg))
    if same and prev and prev.get("status") == "finished":
        log(f"{rd.path}: already finished (last {prev['last_acc']:.2f}%, best {prev['best_acc']:.2f}%)")
        return prev
    ctx = build_context(cfg, log=log, teacher_module=teacher_module, data=data, progress=progress)  # validates first
    if same and prev:  # the teacher may have been trained just now
        check_same_teacher(rd, prev, ctx.teacher_info.get("teacher_digest"))
    rd.commit(cfg, force=force)
    return _run(ctx, rd, progress=progress, log=log, stop_after_steps=stop_after_steps)


class Lane:
    """One student being trained: model, optimiser, scheduler, objective, run directory and bookkeeping.

    Several lanes can share one data stream and one teacher forward per batch (:func:`train_shared`);
    a single run is one lane.  Every lane computes exactly what it would compute alone.
    """

    def __init__(self, ctx: Context, rd: RunDir, log: Callable[[str], None], rt: LocalRuntime = LOCAL):
        self.ctx, self.rd, self.cfg, self.rt = ctx, rd, ctx.cfg, rt
        self.opt, self.sched = make_optimizer(self.cfg, ctx.student, ctx.device)
        self.names = [t.name for t in ctx.objective.terms] + ["total"]
        self.history: list[dict[str, Any]] = []
        self.best = {"acc": -1.0, "epoch": 0}
        self.start, self.elapsed, self.acc_state = (0, 0), 0.0, None
        self.status = "running"
        self.accum: Accumulator | None = None
        self.images = 0
        self.busy = 0.0  # seconds of this lane's own work in the current epoch (shared work excluded)
        if rd.checkpoint.exists():
            st = load_checkpoint(rd.checkpoint)
            try:
                ctx.student.load_state_dict(st["model"])
                self.opt.load_state_dict(st["optimizer"])
                self.sched.load_state_dict(st["scheduler"])
            except (RuntimeError, KeyError, ValueError) as e:
                raise AkdError(f"checkpoint {rd.checkpoint} does not match this run ({type(e).__name__}); use --force to start over") from None
            self.start = (st["epoch"], st["step"])
            self.history, self.best, self.elapsed = st["history"], st["best"], st["elapsed"]
            self.acc_state = st.get("accum")
            torch.set_rng_state(st["rng_cpu"])
            log(f"resuming {rd.path} at epoch {self.start[0] + 1}, step {self.start[1]}")
        # metrics.jsonl = exactly the checkpointed epochs (a kill between a metrics line and its checkpoint
        # must not leave a duplicate line after resuming)
        if rt.writer:
            atomic_write_text(rd.metrics, "".join(json.dumps(h) + "\n" for h in self.history))
        self.fwd = torch.compile(ctx.student) if self.cfg.compile else ctx.student
        self.views = ctx.objective.views
        self.summary: dict[str, Any] = {}

    @property
    def objective(self) -> Objective:
        return self.ctx.objective

    def save(self, epoch: int, step: int) -> None:
        if not self.rt.writer:
            return
        save_checkpoint(self.rd.checkpoint, {
            "model": self.ctx.student.state_dict(), "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "epoch": epoch, "step": step, "history": self.history, "best": self.best, "elapsed": self.elapsed,
            "accum": self.accum.state() if (self.accum is not None and step) else None, "rng_cpu": torch.get_rng_state(),
            "fingerprint": self.cfg.fingerprint(),
        })

    def mark(self, status: str, **extra: Any) -> None:
        self.status = status
        self.summary.update(status=status, **extra)
        if self.rt.writer:
            write_json(self.rd.summary, self.summary)


def _run(ctx: Context, rd: RunDir, *, progress: bool, log: Callable[[str], None], stop_after_steps: int | None) -> dict[str, Any]:
    lane = Lane(ctx, rd, log)
    out = _run_lanes([lane], progress=progress, log=log, stop_after_steps=stop_after_steps)[0]
    if lane.status == "failed":
        raise TrainingDiverged(lane.summary["reason"])
    return out


def _run_lanes(lanes: list[Lane], *, progress: bool, log: Callable[[str], None], stop_after_steps: int | None) -> list[dict[str, Any]]:
    """Train lanes that share the device, data stream (seed, batch size) and teacher, step by step.

    An error other than an interruption (e.g. a checkpoint that cannot be written: disk full) marks every
    unfinished lane ``failed`` with the reason before it propagates; their last checkpoints stay intact.
    """
    try:
        return _lanes_loop(lanes, progress=progress, log=log, stop_after_steps=stop_after_steps)
    except RunInterrupted:
        raise
    except (AkdError, OSError) as e:
        for ln in lanes:
            if ln.status == "running":
                try:
                    ln.mark("failed", reason=str(e))
                except OSError:
                    pass
        raise


def _lanes_loop(lanes: list[Lane], *, progress: bool, log: Callable[[str], None], stop_after_steps: int | None) -> list[dict[str, Any]]:
    first = lanes[0].ctx
    rt = lanes[0].rt  # the process group's answers (LOCAL in a single-process run); all lanes share it
    device, ds, cfg0 = first.device, first.data, first.cfg
    teacher = next((ln.ctx.teacher for ln in lanes if ln.ctx.teacher is not None), None)
    seeds0 = cfg0.seeds()
    cl = use_channels_last(device, cfg0.channels_last)
    # in memory: a DeviceLoader; an image folder: a StreamLoader (worker processes); same interface
    loader = train_loader(ds, cfg0.batch_size, device=device, seed=stream_seed(seeds0["data"], STREAM_DATA),
                          workers=cfg0.workers)
    test_x, test_y = ds.test_x.to(device), ds.test_y.to(device)
    mean_std = (ds.mean, ds.std)
    steps_per_epoch = len(loader)
    fwd_teacher = torch.compile(teacher) if (teacher is not None and cfg0.compile) else teacher
    check_every = 1 if device.type == "cpu" else cfg0.log_every
    d_digest = data_digest(loader)
    # exact teacher cache (opt-in): lanes whose teacher reads are logits/pooled of the real view
    cache_lanes = [ln for ln in lanes if ln.cfg.teacher_cache and teacher is not None and teacher_cache.eligible(ln.objective)]
    t_cache = None
    if cache_lanes:
        from .teacher import cache_root

        srcs = set().union(*(ln.objective.teacher_sources() for ln in cache_lanes))
        t0 = time.perf_counter()
        t_cache = teacher_cache.TeacherViewCache.build(
            teacher, ds.train_x, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, sources=srcs, device=device,
            amp=cfg0.amp, batch_size=cfg0.eval_batch_size, channels_last=cl,
            store=cache_root(cfg0.cache_dir) / "teacher-views", save=rt.writer, log=log)
        log(f"teacher cache: {t_cache.num_views} views x {ds.train_x.shape[0]} images, {t_cache.nbytes() / 2**20:.0f} MiB "
            f"({time.perf_counter() - t0:.1f} s)")
    for ln in lanes:
        if ln.cfg.teacher_cache and ln not in cache_lanes:
            log(f"[{ln.rd.path.name}] teacher cache not used: the objective reads virtual views or feature maps")
    for ln in lanes:
        c = ln.cfg
        ln.summary = {
            "status": "running", "name": describe_name(c), "objective": ln.objective.describe(),
            "objective_name": ln.objective.name, "student": c.student, "dataset": c.dataset,
            "teacher": ln.ctx.teacher_info.get("teacher"), "teacher_acc": ln.ctx.teacher_info.get("teacher_acc"),
            "teacher_digest": ln.ctx.teacher_info.get("teacher_digest"),
            "seed": c.seed, "seeds": c.seeds(), "device": str(device), "epochs": c.epochs, "fingerprint": c.fingerprint(),
            "eval_set": getattr(ds, "eval_name", "test"), "init_digest": ln.ctx.init_digest, "data_digest": d_digest,
            "lr": c.resolved_lr(), "batch_size": c.batch_size, "shared_lanes": len(lanes),
            "environment": environment(device),
        }
        ln.summary.update(rt.describe())  # world size, per-rank batch, relation scope under DDP
        if rt.writer:
            write_json(ln.rd.summary, ln.summary)
    total_steps = max(c.cfg.epochs for c in lanes) * steps_per_epoch
    label = f"[{lanes[0].rd.path.name}]" if len(lanes) == 1 else f"[{len(lanes)} students]"
    bar = Progress(total_steps, label=label, enabled=progress)
    start = min(ln.start for ln in lanes)
    bar.start(start[0] * steps_per_epoch + start[1])
    steps_this_call = 0

    def running(epoch: int) -> list[Lane]:
        return [ln for ln in lanes if ln.status == "running" and epoch < ln.cfg.epochs and ln.start[0] <= epoch]

    def fail(ln: Lane, e: TrainingDiverged) -> None:
        last = ln.rd.checkpoint if ln.rd.checkpoint.exists() else "none (first epoch)"
        ln.mark("failed", reason=f"{e}; the last good checkpoint is {last}")
        bar.message(f"[{ln.rd.path.name}] failed: {ln.summary['reason']}")

    def healthy(group: list[Lane]) -> list[Lane]:
        """The running lanes of ``group`` whose loss terms stayed finite (the others are marked failed)."""
        ok = []
        for ln in group:
            if ln.status != "running":
                continue
            try:
                ln.accum.check_finite()
            except TrainingDiverged as e:
                fail(ln, e)
                continue
            ok.append(ln)
        return ok

    with rt.stop_flag() as stop:  # under DDP the ranks agree on when to stop
        for epoch in range(start[0], max(ln.cfg.epochs for ln in lanes)):
            active = running(epoch)
            if not active:
                continue
            for ln in active:
                ln.ctx.student.train()
                ln.objective.set_epoch(epoch)  # term weight schedules: a pure function of the epoch (resumable)
                ln.accum = rt.accumulator(ln.names, device)
                if ln.acc_state is not None and ln.start[0] == epoch and ln.start[1] > 0:
                    ln.accum.load(ln.acc_state)
                ln.images, ln.busy = 0, 0.0
            first_step = min(ln.start[1] if ln.start[0] == epoch else 0 for ln in active)
            t_epoch = time.perf_counter()
            for step, (xb, yb, info) in enumerate(loader.raw_batches(epoch, start=first_step, with_info=True), start=first_step):
                now = [ln for ln in active if ln.status == "running" and (epoch, step) >= ln.start]
                if not now:
                    continue
                B = xb.shape[0]
                k_max = max(ln.views for ln in now)
                xs = [normalize(xb, *mean_std)]
                if k_max:
                    vcfg = now[0].cfg  # lanes that share batches share the view settings (experiment.share_key)
                    base = xb if vcfg.view_base == "crop" else loader.originals(info.index)
                    xs += [normalize(v, *mean_std) for v in virtual_views(base, k_max, vcfg, vcfg.seeds()["view"], epoch, step)]
                # under DDP every rank drew the same global batch and views: keep this rank's rows
                xs, yb, info = rt.shard(xs, yb, info)
                B = yb.shape[0]
                inputs: dict[int, torch.Tensor] = {}
                t_outs: dict[int, dict[str, torch.Tensor]] = {}
                cached = t_cache.lookup(info.index, info.crop) if t_cache is not None else None
                for ln in now:
                    t0 = time.perf_counter()
                    k = ln.views
                    if k not in inputs:
                        x = torch.cat(xs[: 1 + k]) if k else xs[0]
                        inputs[k] = x.contiguous(memory_format=torch.channels_last) if cl else x
                    x = inputs[k]
                    t_out = None
                    if cached is not None and ln in cache_lanes:
                        t_out = {n: cached[n] for n in ln.objective.teacher_sources()}
                    elif fwd_teacher is not None and ln.objective.needs_teacher:
                        if k not in t_outs:  # one teacher forward per view count, shared by the lanes reading it
                            t1 = time.perf_counter()
                            with autocast(device, ln.cfg.amp), torch.inference_mode():
                                t_outs[k] = fwd_teacher(x)
                            t0 += time.perf_counter() - t1  # shared work: not this lane's own time
                        t_out = {n: t_outs[k][n] for n in ln.objective.teacher_sources()}
                    with autocast(device, ln.cfg.amp):
                        s_out = ln.fwd(x)
                        # relations over this process's batch (under DDP: or the global one, --global-relations)
                        losses = rt.objective(ln.objective, s_out, t_out, yb, B)
                    ln.opt.zero_grad(set_to_none=True)
                    losses["total"].backward()
                    ln.opt.step()
                    ln.accum.add(losses, s_out["logits"][:B], yb, epoch * steps_per_epoch + step)
                    ln.images += x.shape[0] * rt.world_size  # images of the global batch
                    if (step + 1) % check_every == 0:
                        try:
                            ln.accum.check_finite()
                        except TrainingDiverged as e:
                            fail(ln, e)
                    ln.busy += time.perf_counter() - t0
                steps_this_call += 1
                done = step + 1
                if progress and done % cfg0.log_every == 0 and now:
                    ln = now[0]
                    m = ln.accum.means()
                    terms = " ".join(f"{n}={m[n]:.4g}" for n in ln.names)
                    more = f" (+{len(now) - 1} students)" if len(now) > 1 else ""
                    bar.update(epoch * steps_per_epoch + done,
                               f"epoch {epoch + 1}/{ln.cfg.epochs} step {done}/{steps_per_epoch} {terms} acc={m['acc']:.1f}%{more}",
                               images=steps_this_call * xb.shape[0])  # training images (global batch) per second
                if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                    stop.requested = "stop_after_steps"
                rt.sync_stop(stop)  # under DDP a stop requested on any rank stops all ranks at this step
                if stop.requested and done < steps_per_epoch:
                    wall = time.perf_counter() - t_epoch
                    for ln in healthy(active):
                        ln.elapsed += wall
                        ln.save(epoch, done)
                        ln.mark("interrupted", reason=stop.requested, stopped_at={"epoch": epoch + 1, "step": done})
                    bar.close()
                    where = lanes[0].rd.path if len(lanes) == 1 else "the grid directory"
                    raise RunInterrupted(f"{stop.requested}: stopped at epoch {epoch + 1} step {done} with a checkpoint; "
                                         f"resume with --resume --out {where}")
            wall = time.perf_counter() - t_epoch
            rt.sync_stop(stop)
            for ln in healthy(active):
                lr_used = ln.opt.param_groups[0]["lr"]
                ln.sched.step()
                # the lane's own time: all of it when alone; its own work + an equal share of the shared work otherwise
                shared = max(0.0, wall - sum(o.busy for o in active))
                train_time = wall if len(active) == 1 else ln.busy + shared / len(active)
                ln.elapsed += train_time
                # under DDP: rank 0's BN buffers to all ranks, each rank evaluates a shard
                ev = rt.evaluate(ln.ctx.student, test_x, test_y, ds.mean, ds.std, batch_size=ln.cfg.eval_batch_size,
                                 device=device, amp=ln.cfg.amp, channels_last=cl)
                m = ln.accum.means()
                rec = {"epoch": epoch + 1, "lr": lr_used, "train": {n: m[n] for n in ln.names},
                       "train_acc": m["acc"], "test_top1": ev["top1"], "test_top5": ev["top5"], "test_loss": ev["loss"],
                       "train_time": train_time, "images_per_s": ln.images / max(train_time, 1e-9)}
                ln.history.append(rec)
                if ev["top1"] > ln.best["acc"]:
                    ln.best = {"acc": ev["top1"], "epoch": epoch + 1}
                if rt.writer:
                    with open(ln.rd.metrics, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                if (epoch + 1) % ln.cfg.checkpoint_every == 0 or epoch + 1 == ln.cfg.epochs or stop.requested:
                    ln.save(epoch + 1, 0)
                bar.message(f"[{ln.rd.path.name}] epoch {epoch + 1}/{ln.cfg.epochs} loss={m['total']:.4f} train_acc={m['acc']:.2f}% "
                            f"{ln.summary['eval_set']}_acc={ev['top1']:.2f}% (best {ln.best['acc']:.2f}%) {rec['images_per_s']:,.0f} img/s")
                if epoch + 1 == ln.cfg.epochs:
                    _finish(ln, ds)
            if stop.requested and any(ln.status == "running" for ln in lanes):
                for ln in lanes:
                    if ln.status == "running":
                        ln.mark("interrupted", reason=stop.requested, stopped_at={"epoch": epoch + 1, "step": 0})
                bar.close()
                where = lanes[0].rd.path if len(lanes) == 1 else "the grid directory"
                raise RunInterrupted(f"{stop.requested}: stopped after epoch {epoch + 1} with a checkpoint; resume with --resume --out {where}")
    bar.close()
    for ln in lanes:  # lanes resumed after their last epoch (checkpoint written, summary not)
        if ln.status == "running" and ln.history and len(ln.history) >= ln.cfg.epochs:
            _finish(ln, ds)
    return [ln.summary for ln in lanes]


def _finish(ln: Lane, ds: Any) -> None:
    h = ln.history
    last = h[-1]
    if ln.rt.writer:
        save_model(ln.rd.model, ln.ctx.student, ln.cfg.student, ds, last["test_top1"])
    ln.summary.update(
        last_acc=last["test_top1"], last_top5=last["test_top5"], best_acc=ln.best["acc"], best_epoch=ln.best["epoch"],
        time_s=ln.elapsed,
        images_per_s=sum(r["images_per_s"] * r["train_time"] for r in h) / max(1e-9, sum(r["train_time"] for r in h)),
    )
    ln.mark("finished")


def train_shared(cfgs: list[RunConfig], outs: list[str | Path], *, progress: bool = True, log: Callable[[str], None] | None = None,
                 stop_after_steps: int | None = None, force: list[bool] | None = None) -> list[dict[str, Any]]:
    """Train several students in one process on the same batches, with one teacher forward per batch
    (per virtual-view count).  Every student's result equals its separate run with the same seeds.

    All configs must share dataset, dev split, batch size, data seed, device and teacher; finished runs of the
    same config are read back, unfinished ones resume from their checkpoints; a folder holding a run of another
    config is a ConfigError, unless its ``force`` flag is set: then that run starts over.
    """
    log = log or (lambda m: None)
    if not cfgs:
        return []
    keys = {(c.dataset, c.dev, c.batch_size, c.seeds()["data"], c.seeds()["view"], c.device, c.teacher, c.teacher_ckpt,
             c.amp, c.channels_last, c.ra_ops, c.ra_magnitude, c.data_dir) for c in cfgs}
    if len(keys) > 1:
        raise ConfigError("shared-teacher training needs the same dataset, batch size, seeds, device and teacher for every run")
    results: dict[int, dict[str, Any]] = {}
    lanes: list[Lane] = []
    data, teacher, info = None, None, None
    force = force or [False] * len(cfgs)
    for i, (c, out) in enumerate(zip(cfgs, outs)):
        rd = RunDir(out)
        rd.resolve(c, resume=False, force=force[i])  # a folder holding a run of another config is an error
        prev = rd.read_summary()
        if prev and prev.get("status") == "finished" and not force[i] and rd.holds(c):
            results[i] = prev
            continue
        ctx = build_context(c, log=log, teacher_module=teacher, data=data, progress=progress)
        if prev and not force[i]:
            check_same_teacher(rd, prev, ctx.teacher_info.get("teacher_digest"))
        rd.commit(c, force=force[i])
        if ctx.teacher is not None and teacher is None:
            teacher, info = ctx.teacher, ctx.teacher_info
        elif ctx.teacher is not None:
            ctx.teacher_info = info
        data = ctx.data
        lanes.append(Lane(ctx, rd, log))
        results[i] = None  # filled below
    if lanes:
        sums = _run_lanes(lanes, progress=progress, log=log, stop_after_steps=stop_after_steps)
        it = iter(sums)
        for i in sorted(results):
            if results[i] is None:
                results[i] = next(it)
    return [results[i] for i in range(len(cfgs))]


def save_model(path: Path, model: torch.nn.Module, spec: str, ds: Any, acc: float) -> None:
    """Final weights with what is needed to rebuild and check them (also the teacher format)."""
    save_checkpoint(path, {
        "model": spec, "num_classes": ds.num_classes, "in_shape": list(ds.in_shape), "dataset": getattr(ds, "name", "?"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "test_acc": acc, "akd_format": 1,
    })
