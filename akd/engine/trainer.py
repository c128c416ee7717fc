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

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import AkdError, ConfigError, TrainingDiverged
from ..models import create_model
from ..objective import Objective, build_objective
from ..progress import display
from .checkpoint import atomic_write_text, load_checkpoint, save_checkpoint, weights_digest, write_json
from .config import RunConfig
from .metrics import Accumulator, evaluate
from .runs import RunDir, check_same_teacher
from .device import resolve_device, use_channels_last
from .loop import RunInterrupted, SharedLoop, data_digest, save_model, virtual_views  # noqa: F401  (re-exported)
from .seeds import STREAM_INIT, stream_seed
from .signals import StopFlag


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
    with display(progress):  # a download shows progress unless the caller is quiet
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
                bad = f"checkpoint {rd.checkpoint} does not match this run ({type(e).__name__})"
                raise AkdError(f"{bad}; force=True starts over", cli=f"{bad}; use --force to start over") from None
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

    def begin_epoch(self, epoch: int) -> None:
        """Train mode, the epoch's weight-schedule factors, fresh device sums (or the checkpointed partial ones)."""
        self.ctx.student.train()
        self.objective.set_epoch(epoch)  # term weight schedules: a pure function of the epoch (resumable)
        self.accum = self.rt.accumulator(self.names, self.ctx.device)
        if self.acc_state is not None and self.start[0] == epoch and self.start[1] > 0:
            self.accum.load(self.acc_state)
        self.images, self.busy = 0, 0.0

    def record(self, rec: dict[str, Any], *, checkpoint: bool) -> None:
        """One finished epoch: history, best accuracy, the metrics line, and (when due) a checkpoint."""
        self.history.append(rec)
        if rec["test_top1"] > self.best["acc"]:
            self.best = {"acc": rec["test_top1"], "epoch": rec["epoch"]}
        if self.rt.writer:
            with open(self.rd.metrics, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if checkpoint:
            self.save(rec["epoch"], 0)

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
        return SharedLoop(lanes, progress=progress, log=log, stop_after_steps=stop_after_steps).fit()
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
    if len({c.batch_key() for c in cfgs}) > 1:
        raise ConfigError("shared-teacher training needs the same dataset, batch size, seeds, device, teacher and virtual-view settings for every run")
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
