"""Multi-process training with DistributedDataParallel (``torchrun`` or ``akd run --nproc N``).

One process per rank (one GPU per rank on CUDA, NCCL; CPU processes use gloo).  The single-process
engine (:mod:`akd.engine.trainer`) runs unchanged in every rank; its lane is given this rank's
:class:`Runtime` instead of the single-process :class:`~akd.engine.trainer.LocalRuntime`:

* **Batches.**  ``--batch-size`` is the GLOBAL batch; each rank trains on ``batch_size / world``
  rows (a ConfigError if not divisible).  Every rank builds the same :class:`~akd.data.DeviceLoader`
  (same seed) and so draws the same global batch (order, crop/flip) as a 1-process run; rank ``r``
  keeps rows ``[r*b, (r+1)*b)``.  Virtual views are generated for the global batch from the same
  ``(view seed, epoch, step)`` stream as a 1-process run and sliced the same way, so the data
  (real and virtual views) are exactly those of a 1-process run; the price is that every rank
  augments the whole global batch (cheap next to the forward/backward passes).  The learning rate
  is never changed: scale it yourself when you change the global batch.
* **Initialisation** is identical on all ranks (same init stream; DDP broadcasts rank 0's weights
  anyway).  Data order is global (above), so it does not depend on the world size.
* **Relations.**  By default each rank builds its relations over its local ``b`` rows (plain DDP).
  With ``global_relations`` the student's representations are all-gathered *with autograd*
  (:class:`_GatherRows`) and the teacher's without, reordered to the 1-process row layout
  (real view of all ranks, then each virtual view of all ranks), and every relational term is
  computed over the global batch (identically on every rank).  Instance terms (``ce``, ``kd``)
  stay local: the mean over the local rows; DDP averages their gradients, which gives the
  global mean.
* **Gradient scaling.**  A relational loss ``R`` computed identically on every rank gets, through
  the gather, a gradient on rank ``r`` only for rank ``r``'s rows: ``∂R/∂x_r``.  DDP then *averages*
  the ranks' parameter gradients, which would give ``(1/W) Σ_r ∂R/∂x_r ∂x_r/∂θ = ∇R / W``.  The
  gather's backward therefore multiplies its gradient by ``W`` (equivalently: it is the sum over
  ranks of the identical copies' gradients, which is what ``torch.distributed.nn.all_gather`` computes
  with a reduce-scatter; ours needs no communication in backward).  With instance terms
  averaged by DDP this makes the averaged gradient equal the 1-process gradient on the same global
  batch (tested in ``tests/test_distributed.py``).  Reported relational values are unscaled.
* **BatchNorm.**  Without ``sync_bn`` BN normalises with local-batch statistics (standard DDP), so a
  multi-process run is not numerically the 1-process run; DDP broadcasts rank 0's running statistics
  at every forward and :meth:`Runtime.evaluate` does so before evaluating.  ``sync_bn`` converts the
  student to :class:`torch.nn.SyncBatchNorm` (CUDA only: PyTorch has no CPU kernel for it).
* **Files.**  Only rank 0 writes run files (config, metrics, summary, checkpoints, model.pt);
  checkpoints hold the unwrapped module's state.  They contain nothing rank- or world-specific, so
  a run resumes with any world size that divides the global batch (and with one process through
  plain ``akd run --resume``).  Several nodes need a shared file system for the run directory.
* **Metrics** are reduced over ranks (loss terms averaged, correct predictions summed); evaluation is
  sharded over ranks and summed.  A stop (SIGINT/SIGTERM on any rank) is agreed on by all ranks at
  the next step, so every rank stops at the same step and rank 0 writes the checkpoint.
  ``summary.json`` gets a ``distributed`` record (world size, backend, per-process batch, relation
  scope, SyncBN); on resume an option left unset (``None``) takes the value stored there.
* **Teacher.**  A teacher that must be trained is trained by rank 0 alone (one process) while the
  other ranks wait; train it beforehand with ``akd teacher`` to use all ranks' time.  The teacher runs
  on each rank's shard; with ``--teacher-cache`` every rank builds the whole table (as one process
  would) and looks up its own rows.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .. import errors
from ..affinity import Nodes
from ..errors import AkdError, ConfigError, TrainingDiverged
from .config import RunConfig, config_from_dict
from .device import resolve_device
from .metrics import Accumulator, evaluate
from .signals import StopFlag
from .trainer import LocalRuntime, RunInterrupted

#: how long ranks wait for each other outside training steps (rank 0 may be training a teacher)
CONTROL_TIMEOUT = timedelta(days=7)
#: stop reasons, in increasing priority (ranks agree on the maximum)
_STOP_CODES = (None, "stop_after_steps", "SIGTERM", "SIGINT")


@dataclass
class DistOptions:
    """What a distributed run does beyond plain DDP.  ``None``: the choice stored with the run being resumed
    (its summary's ``distributed`` record), else off."""

    global_relations: bool | None = None
    sync_bn: bool | None = None

    def resolved(self, stored: dict[str, Any] | None) -> DistOptions:
        stored = stored or {}
        return DistOptions(*(bool(stored.get(k, False)) if v is None else bool(v)
                             for k, v in dataclasses.asdict(self).items()))


def torchrun_world() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when launched by torchrun (or :func:`launch`) with > 1 process, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))


def check_world(cfg: RunConfig, world: int, opts: DistOptions) -> int:
    """The per-rank batch; ConfigError when ``world`` processes cannot share ``cfg.batch_size``."""
    from ..objective import build_objective

    if world < 1:
        raise ConfigError(f"--nproc {world}: must be >= 1")
    if cfg.batch_size % world:
        raise ConfigError(f"--batch-size {cfg.batch_size} is the global batch and must be divisible by the "
                          f"{world} processes (per-process batch = global / processes)")
    b = cfg.batch_size // world
    obj = build_objective(cfg.objective)
    relational = any(not t.loss.instance for t in obj.terms)
    if relational and b < 2 and not opts.global_relations:
        raise ConfigError(f"--batch-size {cfg.batch_size} over {world} processes leaves {b} row per process: "
                          "relations need >= 2 (use a larger batch or --global-relations)")
    return b


# --------------------------------------------------------------------------------------------
# all-gather with autograd
# --------------------------------------------------------------------------------------------
class _GatherRows(torch.autograd.Function):
    """``[n, ...]`` on each rank → ``[W, n, ...]`` (all ranks' rows, rank order) on every rank.

    Backward: this rank's slice of the incoming gradient times ``W``.  Every rank computes the same
    loss from the same gathered tensor, so the sum over ranks of their gradients w.r.t. this rank's
    rows (what a reduce-scatter would compute) is ``W`` times the local one; see the module
    docstring for why DDP's averaging then yields the 1-process gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: Any, rank: int, world: int) -> torch.Tensor:
        ctx.rank, ctx.world = rank, world
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x, group=group)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad[ctx.rank] * ctx.world, None, None, None


def gather_rows(x: torch.Tensor, *, views: int, grad: bool, group: Any = None) -> torch.Tensor:
    """All-gather a representation whose rows are ``1 + views`` blocks of ``b`` rows (view-major, as the
    engine lays them out) into the 1-process layout of the global batch: view 0 of ranks 0..W-1, then
    view 1 of ranks 0..W-1, …  With ``grad`` the gradient flows back to this rank's rows."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # terms compute relations in fp32 anyway; gloo has no bf16 all-gather everywhere
    k1 = 1 + views
    n = x.shape[0]
    if n % k1:
        raise ConfigError(f"{n} rows cannot hold 1 real + {views} virtual views")
    b, rest = n // k1, tuple(x.shape[1:])
    if grad and x.requires_grad:
        g = _GatherRows.apply(x, group, rank, world)
    else:
        with torch.no_grad():
            g = _GatherRows.apply(x.detach(), group, rank, world)
    return g.view(world, k1, b, *rest).transpose(0, 1).reshape(k1 * world * b, *rest)


def global_objective(objective, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor] | None,
                     targets: torch.Tensor, batch: int, group: Any = None) -> dict[str, torch.Tensor]:
    """``objective`` with its relational terms over the global batch and its instance terms on the local rows.

    ``student``/``teacher`` hold this rank's ``(1 + objective.views) * batch`` rows.  Returns the same dict as
    :meth:`akd.objective.Objective.forward`; relational values are the global ones (equal on all ranks).
    """
    relational = [t for t in objective.terms if not t.loss.instance]
    if not relational or dist.get_world_size(group) == 1:
        return objective(student, teacher, targets, batch_size=batch)
    world = dist.get_world_size(group)
    views = objective.views
    s_src = set().union(*(t.sources() for t in relational))
    t_src = {t.source for t in relational if t.loss.uses_teacher}
    gs = {k: gather_rows(student[k][: (1 + views) * batch], views=views, grad=True, group=group) for k in sorted(s_src)}
    gt = {k: gather_rows(teacher[k][: (1 + views) * batch], views=views, grad=False, group=group) for k in sorted(t_src)} if t_src else None
    local, glob = Nodes(batch, views), Nodes(batch * world, views)
    out: dict[str, torch.Tensor] = {}
    total = None
    for term in objective.terms:
        if term.loss.instance:
            v = term(student, teacher, targets, local, out)
        else:
            v = term(gs, gt, None, glob, out)
        out[term.name] = v
        total = v if total is None else total + v
    out["total"] = total
    return out


# --------------------------------------------------------------------------------------------
# the runtime: this rank's answers to what the training loop asks (see trainer.LocalRuntime)
# --------------------------------------------------------------------------------------------
class DistAccumulator:
    """The engine's Accumulator with global (all-rank) means.

    Ranks accumulate locally; :meth:`check_finite` (called by every rank at the same steps) reduces the
    local sums over ranks into a global snapshot (loss terms averaged over ranks: equal shards, so the
    global per-step value; correct predictions and images summed), which :meth:`means`/:meth:`state`
    report.  A loaded (checkpointed) state is already global and is added once.
    """

    def __init__(self, names: list[str], device: torch.device, rt: Runtime):
        self.rt = rt
        self.local = Accumulator(names, device)
        self.names = names
        self.base: dict[str, Any] | None = None
        self.snap = Accumulator(names, device)

    def add(self, losses, logits, y, step) -> None:
        self.local.add(losses, logits, y, step)

    def load(self, st: dict[str, Any]) -> None:
        self.base = st
        self.snap.load(st)

    def _reduce(self) -> None:
        loc, W = self.local, self.rt.world_size
        dev = loc.sums.device
        packed = torch.cat([loc.sums, loc.correct.double().view(1)])
        dist.all_reduce(packed, group=self.rt.group)
        big = torch.iinfo(torch.int64).max
        bad = torch.where(loc.first_bad < 0, torch.full_like(loc.first_bad, big), loc.first_bad)
        dist.all_reduce(bad, op=dist.ReduceOp.MIN, group=self.rt.group)
        bad = torch.where(bad == big, torch.full_like(bad, -1), bad)
        sums, correct = packed[:-1] / W, packed[-1].round().long()
        seen, steps = loc.seen * W, loc.steps
        if self.base is not None:
            b = self.base
            sums = sums + b["sums"].to(dev)
            correct = correct + b["correct"].to(dev)
            bb = b["first_bad"].to(dev)
            bad = torch.where(bb >= 0, bb, bad)  # the earlier (checkpointed) bad step wins
            seen, steps = seen + b["seen"], steps + b["steps"]
        self.snap.load({"sums": sums, "correct": correct, "first_bad": bad, "seen": seen, "steps": steps})

    def check_finite(self) -> None:
        self._reduce()
        self.snap.check_finite()

    def means(self) -> dict[str, float]:
        return self.snap.means()

    def state(self) -> dict[str, Any]:
        return self.snap.state()


class DistStopFlag(StopFlag):
    """The engine's StopFlag whose ``requested`` is the value all ranks agreed on at the last :meth:`sync`.

    The signal handler (and ``stop_after_steps``) set this rank's *pending* request; the engine reads the agreed one,
    so every rank stops at the same step.
    """

    requested = property(lambda self: self._agreed, lambda self, v: setattr(self, "_pending", v))

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._agreed = None
        self._pending = None
        super().__init__()

    def sync(self) -> None:
        code = torch.tensor([_STOP_CODES.index(self._pending) if self._pending in _STOP_CODES else 2])
        dist.all_reduce(code, op=dist.ReduceOp.MAX, group=self.rt.control)
        self._agreed = _STOP_CODES[int(code)]


class Runtime(LocalRuntime):
    """Rank ``rank`` of ``world_size``: the DDP answers to the questions the training loop asks its runtime
    (see :class:`akd.engine.trainer.LocalRuntime`, the single-process answers)."""

    def __init__(self, rank: int, world_size: int, device: torch.device, opts: DistOptions, group: Any, control: Any,
                 backend: str, batch_per_process: int | None = None):
        self.rank, self.world_size, self.device, self.opts = rank, world_size, device, opts
        self.group, self.control, self.backend = group, control, backend
        self.batch_per_process = batch_per_process

    # -- identity --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"distributed": {"world_size": self.world_size, "backend": self.backend, "batch_per_process": self.batch_per_process,
                                "global_relations": self.opts.global_relations, "sync_bn": self.opts.sync_bn}}

    # -- per step --------------------------------------------------------------------------
    def shard(self, xs: list[torch.Tensor], yb: torch.Tensor, info: Any = None):
        """This rank's rows ``[r*b, (r+1)*b)`` of the global batch (every view), its labels and batch info."""
        B = yb.shape[0]
        b = B // self.world_size
        lo, hi = self.rank * b, (self.rank + 1) * b
        xs = [x[lo:hi] for x in xs]
        if info is not None:
            info = _slice_info(info, lo, hi)
        return xs, yb[lo:hi], info

    def objective(self, objective, s_out, t_out, yb, batch: int):
        if self.opts.global_relations:
            return global_objective(objective, s_out, t_out, yb, batch, group=self.group)
        return objective(s_out, t_out, yb, batch_size=batch)

    def accumulator(self, names: list[str], device: torch.device) -> DistAccumulator:
        return DistAccumulator(names, device, self)

    def stop_flag(self):
        return DistStopFlag(self)

    def sync_stop(self, stop) -> None:
        stop.sync()

    # -- per epoch -------------------------------------------------------------------------
    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (BN running statistics) to every rank: what the checkpoint holds."""
        for buf in model.buffers():
            dist.broadcast(buf.data, 0, group=self.group)

    def evaluate(self, model, x_u8, y, mean, std, *, batch_size, device, amp="auto", channels_last=False) -> dict[str, float]:
        """The engine's ``evaluate`` over the whole set, each rank taking a contiguous shard (rank 0's BN buffers)."""
        self.sync_buffers(model)
        n = x_u8.shape[0]
        per = -(-n // self.world_size)
        lo, hi = min(n, self.rank * per), min(n, (self.rank + 1) * per)
        ev = evaluate(model, x_u8[lo:hi], y[lo:hi], mean, std, batch_size=batch_size, device=device, amp=amp,
                      channels_last=channels_last)
        ns = hi - lo
        comm = self.device if self.backend == "nccl" else torch.device("cpu")
        t = torch.tensor([round(ev["top1"] * ns / 100.0), round(ev["top5"] * ns / 100.0), ev["loss"] * ns],
                         dtype=torch.float64, device=comm)
        dist.all_reduce(t, group=self.group)
        c1, c5, loss = t.tolist()
        n = max(1, n)
        return {"top1": 100.0 * round(c1) / n, "top5": 100.0 * round(c5) / n, "loss": loss / n}


def _slice_info(info: Any, lo: int, hi: int) -> Any:
    """Rows ``lo:hi`` of a :class:`~akd.data.pipeline.BatchInfo` (sample index and crop/flip draws; the teacher
    cache reads them)."""
    crop = info.crop
    if crop is not None:
        crop = type(crop)(*(t[lo:hi] for t in crop))
    return info._replace(index=info.index[lo:hi], crop=crop)


# --------------------------------------------------------------------------------------------
# one rank's run
# --------------------------------------------------------------------------------------------
def _rebuild_error(kind: str, message: str, code: int) -> AkdError:
    classes = {"RunInterrupted": RunInterrupted, "TrainingDiverged": TrainingDiverged}
    cls = classes.get(kind) or getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, AkdError)):
        cls = AkdError
    e = cls(message)
    e.exit_code = code
    return e


def train_distributed(cfg: RunConfig, out: str | Path, *, resume: bool = False, force: bool = False, progress: bool = True,
                      log: Callable[[str], None] | None = None, opts: DistOptions | None = None, data: Any = None,
                      stop_after_steps: int | None = None) -> dict[str, Any]:
    """This rank's part of a DDP run (env:// rendezvous: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Same contract as :func:`akd.engine.train`; every rank returns the run's summary.  Rank 0 validates the run
    directory, resolves (trains) the teacher and writes the files; the others wait for it, then train.
    """

    opts = opts or DistOptions()
    log = log or (lambda m: None)
    world_info = torchrun_world()
    if world_info is None:
        raise ConfigError("train_distributed needs RANK/WORLD_SIZE > 1 in the environment (torchrun or akd run --nproc)")
    rank, world, local_rank = world_info
    cfg = dataclasses.replace(cfg)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"rank {rank} (local rank {local_rank}) has no GPU: {torch.cuda.device_count()} visible; "
                              "use one process per GPU")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    cfg.device = str(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    own = not dist.is_initialized()
    if own:
        dist.init_process_group(backend, rank=rank, world_size=world)
    ok = False
    try:
        control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
        summary = _train_rank(cfg, Path(out), rank, world, device, backend, control, resume=resume, force=force,
                              progress=progress, log=log, opts=opts, data=data, stop_after_steps=stop_after_steps)
        ok = True
        return summary
    finally:
        # Only a clean exit tears the group down: after a failure another rank may still sit in a collective, and
        # destroying the group under it can abort this process (std::terminate in gloo) before the error is told.
        if ok and own and dist.is_initialized():
            dist.destroy_process_group()


def _train_rank(cfg, out, rank, world, device, backend, control, *, resume, force, progress, log, opts, data,
                stop_after_steps):
    """Phase 1: rank 0 validates the run folder, resolves (trains) the teacher and commits the folder while the others
    wait for its message; phase 2: every rank trains its shard (:func:`_train_shard`)."""
    from . import trainer as T

    rd = T.RunDir(out)
    ctx, msg, error = None, None, None
    if rank == 0:
        try:
            msg, ctx = _plan_run(cfg, rd, world, device, resume=resume, force=force, progress=progress, log=log,
                                 opts=opts, data=data)
        except Exception as e:  # noqa: BLE001 - told to the other ranks (they would wait for rank 0 forever), then raised here
            error, msg = e, {"error": (type(e).__name__, str(e), getattr(e, "exit_code", 2))}
    msg = _agree(msg, error, rank, control)
    if "finished" in msg:
        return msg["finished"]
    if rank != 0:
        cfg = config_from_dict(msg["config"])
        cfg.device = str(device)
        ctx = T.build_context(cfg, log=_quiet, data=data, progress=False)
    return _train_shard(ctx, rd, rank, world, device, backend, control, DistOptions(**msg["opts"]),
                        progress=progress, log=log, stop_after_steps=stop_after_steps)


def _quiet(message: str) -> None:
    """The log of the ranks that print nothing."""


def _check_sync_bn(opts: DistOptions, device: torch.device) -> None:
    if opts.sync_bn and device.type != "cuda":
        raise ConfigError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel)")


def _plan_run(cfg, rd, world, device, *, resume, force, progress, log, opts, data) -> tuple[dict[str, Any], Any]:
    """Rank 0's phase 1: the message for the other ranks (``finished``: the summary of a finished run read back;
    else the run's ``config`` and ``opts``) and rank 0's training context (None for a finished run)."""
    from . import trainer as T

    cfg = rd.resolve(cfg, resume=resume, force=force)
    cfg.device = str(device)
    prev = rd.read_summary()
    same = bool(rd.read_config()) and not force and rd.holds(cfg)
    if prev and prev.get("status") == "finished" and same:
        log(f"{rd.path}: already finished (last {prev['last_acc']:.2f}%, best {prev['best_acc']:.2f}%)")
        return {"finished": prev}, None
    before = ((prev or {}).get("distributed") or {"world_size": 1}) if same and rd.checkpoint.exists() else None
    opts = _continued_options(opts, before, world, log)
    _check_sync_bn(opts, device)
    check_world(cfg, world, opts)
    ctx = T.build_context(cfg, log=log, data=data, progress=progress)
    rd.commit(cfg, force=force)
    return {"config": cfg.to_dict(), "opts": dataclasses.asdict(opts)}, ctx


def _continued_options(opts: DistOptions, before: dict[str, Any] | None, world: int, log: Callable[[str], None]) -> DistOptions:
    """The options of the run; ``before``: the ``distributed`` record of the run being continued (None: a new run),
    whose choices fill the options left unset.  A changed choice or world size is logged."""
    opts = opts.resolved(before)
    if before is None:
        return opts
    changed = {k: v for k, v in dataclasses.asdict(opts).items() if k in before and before[k] != v}
    if changed:
        log("note: the run being resumed was trained with " + ", ".join(f"{k}={before[k]}" for k in changed)
            + "; continuing with " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    if before["world_size"] != world:
        log(f"resuming a checkpoint of {before['world_size']} process(es) with {world}")
    return opts


def _agree(msg: dict[str, Any] | None, error: Exception | None, rank: int, control: Any) -> dict[str, Any]:
    """Rank 0's phase-1 message on every rank; an error on rank 0 is raised on every rank."""
    box: list[Any] = [msg if rank == 0 else None]
    dist.broadcast_object_list(box, src=0, group=control)
    if error is not None:
        raise error
    agreed: dict[str, Any] = box[0]
    if "error" in agreed:
        raise _rebuild_error(*agreed["error"])
    return agreed


def _train_shard(ctx, rd, rank, world, device, backend, control, opts: DistOptions, *, progress, log,
                 stop_after_steps) -> dict[str, Any]:
    """Phase 2: this rank trains its shard; the lane asks this rank's runtime (rows, relations, means, stops, writes)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from . import trainer as T

    rt = Runtime(rank, world, device, opts, dist.group.WORLD, control, backend, ctx.cfg.batch_size // world)
    if opts.sync_bn:
        ctx.student = torch.nn.SyncBatchNorm.convert_sync_batchnorm(ctx.student)
    say = log if rank == 0 else _quiet
    lane = T.Lane(ctx, rd, say, rt=rt)
    find_unused = "logits" not in ctx.objective.student_sources()
    ddp = DDP(ctx.student, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=find_unused)
    lane.fwd = torch.compile(ddp) if ctx.cfg.compile else ddp
    summary = T._run_lanes([lane], progress=progress and rank == 0, log=say, stop_after_steps=stop_after_steps)[0]
    if lane.status == "failed":
        raise TrainingDiverged(lane.summary["reason"])
    return summary


# --------------------------------------------------------------------------------------------
# akd run --nproc N: a torchrun-equivalent launcher on this machine
# --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, env: dict[str, str], cfg_dict: dict[str, Any], out: str, resume: bool, force: bool,
            progress: bool, opts: dict[str, Any], threads: int | None, stop_after_steps: int | None, queue) -> None:
    os.environ.update(env)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    if threads:
        torch.set_num_threads(threads)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if rank == 0 else None
    try:
        s = train_distributed(config_from_dict(cfg_dict), out, resume=resume, force=force, progress=progress, log=log,
                              opts=DistOptions(**opts), stop_after_steps=stop_after_steps)
        report = (rank, "ok", s if rank == 0 else None, 0)
    except AkdError as e:
        report = (rank, type(e).__name__, str(e), e.exit_code)
    except KeyboardInterrupt:
        report = (rank, "RunInterrupted", "interrupted", 130)
    except BaseException as e:  # noqa: BLE001 - reported to the launcher, traceback on stderr
        if rank == 0 or not isinstance(e, (RuntimeError, dist.DistBackendError)):
            traceback.print_exc()
        report = (rank, "crash", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", 1)
    queue.put(report)  # a pipe write: delivered before this returns
    # Leave without running C++ destructors: a process group (or DDP reducer) torn down at interpreter exit while
    # another rank still talks to it can abort this process; everything worth keeping is written and reported.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(report[3])


def launch(nproc: int, cfg: RunConfig, out: str | Path, *, resume: bool = False, force: bool = False, progress: bool = True,
           opts: DistOptions | None = None, threads: int | None = None, stop_after_steps: int | None = None,
           grace_s: float = 10.0) -> dict[str, Any]:
    """Run ``nproc`` ranks of :func:`train_distributed` on this machine (spawned processes, env:// rendezvous on
    127.0.0.1) and return rank 0's summary.  SIGINT/SIGTERM are forwarded to the ranks (SIGTERM: checkpoint and
    stop at the next step).  A rank's AkdError is re-raised here with its message and exit code; when one rank
    fails the others are terminated after ``grace_s`` seconds."""
    opts = opts or DistOptions()
    _check_launch(nproc, cfg, opts, resume)
    if threads is None:  # like torchrun's OMP_NUM_THREADS, but sharing the machine's cores among the ranks
        threads = max(1, (os.cpu_count() or 1) // nproc)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    mp = multiprocessing.get_context("spawn")
    queue = mp.SimpleQueue()
    procs = [mp.Process(target=_worker, name=f"akd-rank{r}",
                        args=(r, nproc, env, cfg.to_dict(), str(out), resume, force, progress and r == 0,
                              dataclasses.asdict(opts), threads, stop_after_steps, queue))
             for r in range(nproc)]
    return _outcome(_supervise(procs, queue, grace_s), procs)


def _check_launch(nproc: int, cfg: RunConfig, opts: DistOptions, resume: bool) -> None:
    """What :func:`launch` refuses before starting a process."""
    if nproc < 1:
        raise ConfigError(f"nproc={nproc}: must be >= 1")
    if torchrun_world() is not None:
        raise ConfigError(f"nproc={nproc} starts its own processes, but this one already runs under torchrun "
                          "(RANK/WORLD_SIZE set): torchrun starts the ranks")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(f"nproc={nproc}: only {torch.cuda.device_count()} GPU(s) visible (one process per GPU)")
    _check_sync_bn(opts, device)
    if not resume:  # a resumed run's stored config (rank 0 checks it) replaces the given one
        check_world(cfg, nproc, opts)


def _supervise(procs: list[Any], queue: Any, grace_s: float) -> dict[int, tuple[str, Any, int]]:
    """Start the ranks and wait for all of them (the others terminated ``grace_s`` after one fails), SIGINT/SIGTERM
    forwarded to them; returns their reports ``{rank: (kind, payload, exit code)}``."""
    results: dict[int, tuple[str, Any, int]] = {}

    def drain():
        while not queue.empty():
            r, kind, payload, code = queue.get()
            results[r] = (kind, payload, code)

    old = _forward_signals(procs)
    try:
        for p in procs:
            p.start()
        _wait_for_ranks(procs, drain, grace_s)
        drain()
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        for p in procs:
            if p.exitcode is None and p.pid is not None:
                p.kill()
                p.join()
    return results


def _forward_signals(procs: list[Any]) -> dict[int, Any]:
    """SIGINT/SIGTERM to this process become SIGTERM to every running rank (in the main thread only, where Python
    allows handlers); returns the handlers replaced."""
    def forward(signum, frame):
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except OSError:
                    pass

    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, forward)
    return old


def _wait_for_ranks(procs: list[Any], drain: Callable[[], None], grace_s: float) -> None:
    """Until every rank has exited, reading reports as they come; ``grace_s`` after the first failure the ranks still
    running are terminated (then killed)."""
    failed_at = None
    while True:
        drain()
        codes = [p.exitcode for p in procs]
        if all(c is not None for c in codes):
            return
        if failed_at is None and any(c not in (None, 0) for c in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace_s:
            for p in procs:
                if p.exitcode is None:
                    p.terminate()
            for p in procs:
                p.join(5)
                if p.exitcode is None:
                    p.kill()
                    p.join()
            return
        time.sleep(0.05)


def _outcome(results: dict[int, tuple[str, Any, int]], procs: list[Any]) -> dict[str, Any]:
    """Rank 0's summary when it finished, else the most telling error raised: an AkdError (rank 0's first), else the
    first crash."""
    if results.get(0, ("",))[0] == "ok":  # rank 0 finished and wrote the run (a late signal may have hit the others)
        return results[0][1]
    ranked = sorted(results.items(), key=lambda kv: (kv[1][0] in ("ok", "crash"), kv[0]))
    for r, (kind, payload, code) in ranked:
        if kind == "ok":
            continue
        if kind == "crash":
            raise AkdError(f"rank {r} of {len(procs)} failed: {payload}")
        raise _rebuild_error(kind, payload, code)
    codes = ", ".join(f"rank {i}: {p.exitcode}" for i, p in enumerate(procs))
    raise AkdError(f"distributed run failed (exit codes {codes})")
