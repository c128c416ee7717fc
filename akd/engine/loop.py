"""The training loop: ``fit → train_epoch → train_step`` over lanes that share one data stream and one teacher.

A *lane* (:class:`akd.engine.trainer.Lane`) is one student with its optimiser, objective and run folder; a single
run is one lane, a shared-teacher grid group several.  Per step, every lane computes exactly what it would compute
alone (tested); the teacher forward and the virtual views are computed once per step and shared.

* :meth:`SharedLoop.fit` — epochs, under the stop flag; leftover lanes finished at the end.
* :meth:`SharedLoop.train_epoch` — one epoch: lanes begin, steps, stop requests, then :meth:`end_epoch`.
* :meth:`SharedLoop.train_step` — one batch: views, this process's shard, then :meth:`lane_step` per lane
  (teacher outputs, student forward, objective, backward, optimiser, device-side accumulation).
* :meth:`SharedLoop.end_epoch` — scheduler, evaluation, metrics line (and the run's ``--logger`` backends), checkpoint,
  finish.

No host synchronisation inside a step on CUDA: sums and non-finite flags stay on the device and are read every
``log_every`` steps (every step on CPU, where a read is free).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from ..data import rand_augment, train_loader
from ..errors import AkdError, TrainingDiverged
from ..loggers import Loggers
from ..progress import Progress, display
from .checkpoint import save_checkpoint, write_json
from .config import RunConfig
from .device import autocast, use_channels_last
from .environment import environment
from .runs import describe_name
from .seeds import STREAM_DATA, STREAM_VIEW, stream_seed
from .signals import EXIT_INTERRUPTED
from . import teacher_cache


class RunInterrupted(AkdError):
    """SIGINT/SIGTERM: the run stopped after a step and saved a checkpoint."""

    exit_code = EXIT_INTERRUPTED


def virtual_views(x_u8: torch.Tensor, k: int, cfg: RunConfig, view_seed: int, epoch: int, step: int) -> list[torch.Tensor]:
    """k RandAugment views (``cfg.ra_ops`` ops of magnitude ``cfg.ra_magnitude`` from ``cfg.ra_pool``) of ``x_u8``: the
    cropped/flipped real batch (``view_base = "crop"``) or the stored images (``"original"``); (view, epoch, step) stream.

    The engine's only source of virtual views (the data loaders make the real view alone); the loader's
    ``to_float`` normalises them like the real batch."""
    g = torch.Generator(device=x_u8.device)
    g.manual_seed(stream_seed(view_seed, STREAM_VIEW, epoch, step))
    return [rand_augment(x_u8, g, num_ops=cfg.ra_ops, magnitude=cfg.ra_magnitude, ops=cfg.ra_pool) for _ in range(k)]


def data_digest(loader: Any, epoch: int = 0) -> str:
    """SHA-1 of an epoch's sample order and first batch's crop/flip draws (equal data order across runs)."""
    import hashlib

    h = hashlib.sha1(loader.order(epoch).cpu().numpy().tobytes())
    for xb, _ in loader.raw_batches(epoch):
        h.update(xb.cpu().numpy().tobytes())
        break
    return h.hexdigest()[:16]


def save_model(path, model: torch.nn.Module, spec: str, ds: Any, acc: float) -> None:
    """Final weights with what is needed to rebuild and check them (also the teacher format)."""
    save_checkpoint(path, {
        "model": spec, "num_classes": ds.num_classes, "in_shape": list(ds.in_shape), "dataset": getattr(ds, "name", "?"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "test_acc": acc, "akd_format": 1,
    })


class SharedLoop:
    """Train ``lanes`` (same device, data stream, batch size and teacher) step by step; see the module doc."""

    def __init__(self, lanes: list[Any], *, progress: bool, log: Callable[[str], None], stop_after_steps: int | None):
        self.lanes, self.log, self.progress, self.stop_after_steps = lanes, log, progress, stop_after_steps
        first = lanes[0].ctx
        self.rt = lanes[0].rt  # the process group's answers (LOCAL in a single-process run); all lanes share it
        self.device, self.ds, self.cfg0 = first.device, first.data, first.cfg
        teacher = next((ln.ctx.teacher for ln in lanes if ln.ctx.teacher is not None), None)
        self.cl = use_channels_last(self.device, self.cfg0.channels_last)
        # in memory: a DeviceLoader; an image folder: a StreamLoader (worker processes); same interface
        self.loader = train_loader(self.ds, self.cfg0.batch_size, device=self.device,
                                   seed=stream_seed(self.cfg0.seeds()["data"], STREAM_DATA), workers=self.cfg0.workers)
        self.test_x, self.test_y = self.ds.test_x.to(self.device), self.ds.test_y.to(self.device)
        self.steps_per_epoch = len(self.loader)
        self.teacher = torch.compile(teacher) if (teacher is not None and self.cfg0.compile) else teacher
        self.check_every = 1 if self.device.type == "cpu" else self.cfg0.log_every
        self.t_cache, self.cache_lanes = self._teacher_cache(teacher)
        self._write_summaries(data_digest(self.loader))
        label = f"[{lanes[0].rd.path.name}]" if len(lanes) == 1 else f"[{len(lanes)} students]"
        self.bar = Progress(max(ln.cfg.epochs for ln in lanes) * self.steps_per_epoch, label=label, enabled=progress)
        self.start = min(ln.start for ln in lanes)
        self.bar.start(self.start[0] * self.steps_per_epoch + self.start[1])
        self.steps_this_call = 0
        self.trackers = {id(ln): self._open_loggers(ln) for ln in lanes}

    # -- set-up ----------------------------------------------------------------------------
    def _teacher_cache(self, teacher):
        """The exact teacher cache (opt-in) for lanes whose teacher reads are logits/pooled of the real view."""
        lanes = [ln for ln in self.lanes if ln.cfg.teacher_cache and teacher is not None and teacher_cache.eligible(ln.objective)]
        t_cache = None
        if lanes:
            from ..paths import cache_root

            ds, cfg0 = self.ds, self.cfg0
            srcs = set().union(*(ln.objective.teacher_sources() for ln in lanes))
            t0 = time.perf_counter()
            t_cache = teacher_cache.TeacherViewCache.build(
                teacher, ds.train_x, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, sources=srcs, device=self.device,
                amp=cfg0.amp, batch_size=cfg0.eval_batch_size, channels_last=self.cl,
                store=cache_root(cfg0.cache_dir) / "teacher-views", save=self.rt.writer, log=self.log, progress=self.progress)
            self.log(f"teacher cache: {t_cache.num_views} views x {ds.train_x.shape[0]} images, "
                     f"{t_cache.nbytes() / 2**20:.0f} MiB ({time.perf_counter() - t0:.1f} s)")
        for ln in self.lanes:
            if ln.cfg.teacher_cache and ln not in lanes:
                self.log(f"[{ln.rd.path.name}] teacher cache not used: the objective reads virtual views or feature maps")
        return t_cache, lanes

    def _open_loggers(self, ln: Any) -> Loggers:
        """The lane's ``loggers`` (none on a process that writes no run files), given its resolved config and the
        epochs it already recorded (a resumed run)."""
        specs = ln.cfg.loggers if self.rt.writer else None
        return Loggers(specs or [], ln.rd.path).start({**ln.cfg.resolved(), "objective_terms": ln.objective.describe()},
                                                      ln.history)

    def _write_summaries(self, d_digest: str) -> None:
        for ln in self.lanes:
            c = ln.cfg
            ln.summary = {
                "status": "running", "name": describe_name(c), "objective": ln.objective.describe(),
                "objective_name": ln.objective.name, "student": c.student, "dataset": c.dataset,
                "teacher": ln.ctx.teacher_info.get("teacher"), "teacher_acc": ln.ctx.teacher_info.get("teacher_acc"),
                "teacher_digest": ln.ctx.teacher_info.get("teacher_digest"),
                "seed": c.seed, "seeds": c.seeds(), "device": str(self.device), "epochs": c.epochs, "fingerprint": c.fingerprint(),
                "eval_set": getattr(self.ds, "eval_name", "test"), "init_digest": ln.ctx.init_digest, "data_digest": d_digest,
                "lr": c.resolved_lr(), "batch_size": c.batch_size, "shared_lanes": len(self.lanes),
                "environment": environment(self.device),
            }
            ln.summary.update(self.rt.describe())  # world size, per-rank batch, relation scope under DDP
            if self.rt.writer:
                write_json(ln.rd.summary, ln.summary)

    # -- fit -------------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        try:  # evaluations show progress only where the loop does (not --quiet, rank 0)
            with self.rt.stop_flag() as stop, display(self.progress):  # under DDP the ranks agree on when to stop
                for epoch in range(self.start[0], max(ln.cfg.epochs for ln in self.lanes)):
                    active = [ln for ln in self.lanes if ln.status == "running" and epoch < ln.cfg.epochs and ln.start[0] <= epoch]
                    if active:
                        self.train_epoch(epoch, active, stop)
            self.bar.close()
            for ln in self.lanes:  # lanes resumed after their last epoch (checkpoint written, summary not)
                if ln.status == "running" and ln.history and len(ln.history) >= ln.cfg.epochs:
                    self.finish(ln)
            return [ln.summary for ln in self.lanes]
        finally:  # finished, failed or interrupted: the loggers flush and let go
            for t in self.trackers.values():
                t.close()

    def train_epoch(self, epoch: int, active: list[Any], stop) -> None:
        for ln in active:
            ln.begin_epoch(epoch)
        first_step = min(ln.start[1] if ln.start[0] == epoch else 0 for ln in active)
        t_epoch = time.perf_counter()
        batches = self.loader.raw_batches(epoch, start=first_step, with_info=True)
        for step, (xb, yb, info) in enumerate(batches, start=first_step):
            now = [ln for ln in active if ln.status == "running" and (epoch, step) >= ln.start]
            if not now:
                continue
            self.train_step(epoch, step, xb, yb, info, now)
            self.steps_this_call += 1
            self.show_progress(epoch, step + 1, now, xb.shape[0])
            if self.stop_after_steps is not None and self.steps_this_call >= self.stop_after_steps:
                stop.requested = "stop_after_steps"
            self.rt.sync_stop(stop)  # under DDP a stop requested on any rank stops all ranks at this step
            if stop.requested and step + 1 < self.steps_per_epoch:
                self.interrupt(stop.requested, epoch, step + 1, active, time.perf_counter() - t_epoch)
        wall = time.perf_counter() - t_epoch
        self.rt.sync_stop(stop)
        self.end_epoch(epoch, active, wall, stop.requested)
        if stop.requested and any(ln.status == "running" for ln in self.lanes):
            self.interrupt(stop.requested, epoch, 0, [], 0.0)

    # -- one step --------------------------------------------------------------------------
    def train_step(self, epoch: int, step: int, xb: torch.Tensor, yb: torch.Tensor, info: Any, now: list[Any]) -> None:
        xs = [self.loader.to_float(xb)]
        k_max = max(ln.views for ln in now)
        if k_max:
            vcfg = now[0].cfg  # lanes that share batches share the view settings (RunConfig.batch_key)
            base = xb if vcfg.view_base == "crop" else self.loader.originals(info.index)
            xs += [self.loader.to_float(v) for v in virtual_views(base, k_max, vcfg, vcfg.seeds()["view"], epoch, step)]
        xs, yb, info = self.rt.shard(xs, yb, info)  # under DDP every rank drew the same global batch: keep its rows
        shared: dict[str, dict[int, Any]] = {"inputs": {}, "teacher": {}}
        cached = self.t_cache.lookup(info.index, info.crop) if self.t_cache is not None else None
        for ln in now:
            self.lane_step(ln, epoch, step, xs, yb, shared, cached)

    def lane_step(self, ln: Any, epoch: int, step: int, xs: list[torch.Tensor], yb: torch.Tensor,
                  shared: dict[str, dict[int, Any]], cached: dict[str, torch.Tensor] | None) -> None:
        t0 = time.perf_counter()
        k, B = ln.views, yb.shape[0]
        if k not in shared["inputs"]:
            x = torch.cat(xs[: 1 + k]) if k else xs[0]
            shared["inputs"][k] = x.contiguous(memory_format=torch.channels_last) if self.cl else x
        x = shared["inputs"][k]
        t_out = None
        if cached is not None and ln in self.cache_lanes:
            t_out = {n: cached[n] for n in ln.objective.teacher_sources()}
        elif self.teacher is not None and ln.objective.needs_teacher:
            if k not in shared["teacher"]:  # one teacher forward per view count, shared by the lanes reading it
                t1 = time.perf_counter()
                with autocast(self.device, ln.cfg.amp), torch.inference_mode():
                    shared["teacher"][k] = self.teacher(x)
                t0 += time.perf_counter() - t1  # shared work: not this lane's own time
            t_out = {n: shared["teacher"][k][n] for n in ln.objective.teacher_sources()}
        with autocast(self.device, ln.cfg.amp):
            s_out = ln.fwd(x)
            # relations over this process's batch (under DDP: or the global one, --global-relations)
            losses = self.rt.objective(ln.objective, s_out, t_out, yb, B)
        ln.opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        ln.opt.step()
        ln.accum.add(losses, s_out["logits"][:B], yb, epoch * self.steps_per_epoch + step)
        ln.images += x.shape[0] * self.rt.world_size  # images of the global batch
        if (step + 1) % self.check_every == 0:
            self.check_finite(ln)
        ln.busy += time.perf_counter() - t0

    # -- bookkeeping -----------------------------------------------------------------------
    def check_finite(self, ln: Any) -> bool:
        """False (and the lane marked failed, its last good checkpoint named) when a loss term became NaN/inf."""
        try:
            ln.accum.check_finite()
            return True
        except TrainingDiverged as e:
            last = ln.rd.checkpoint if ln.rd.checkpoint.exists() else "none (first epoch)"
            ln.mark("failed", reason=f"{e}; the last good checkpoint is {last}")
            self.bar.message(f"[{ln.rd.path.name}] failed: {ln.summary['reason']}")
            return False

    def healthy(self, group: list[Any]) -> list[Any]:
        return [ln for ln in group if ln.status == "running" and self.check_finite(ln)]

    def show_progress(self, epoch: int, done: int, now: list[Any], batch: int) -> None:
        if not (self.progress and done % self.cfg0.log_every == 0):
            return
        ln = now[0]
        m = ln.accum.means()
        terms = " ".join(f"{n}={m[n]:.4g}" for n in ln.names)
        more = f" (+{len(now) - 1} students)" if len(now) > 1 else ""
        self.bar.update(epoch * self.steps_per_epoch + done,
                        f"epoch {epoch + 1}/{ln.cfg.epochs} step {done}/{self.steps_per_epoch} {terms} acc={m['acc']:.1f}%{more}",
                        images=self.steps_this_call * batch)  # training images (global batch) per second

    def interrupt(self, reason: str, epoch: int, done: int, active: list[Any], wall: float) -> None:
        """Mid-epoch (``done`` steps): checkpoint the healthy active lanes that stepped up to here; after an epoch
        (``done`` = 0, the checkpoints written by :meth:`end_epoch`) nothing to write.  Every running lane is marked
        interrupted at its own position (a lane resumed further on than the others: its checkpoint's).  Then raise
        :class:`RunInterrupted`."""
        pos = (epoch, done) if done else (epoch + 1, 0)  # where the stepping lanes stand: (0-based epoch, step)
        for ln in self.healthy(active):
            if done and ln.start <= pos:  # stepped up to here (a lane resumed further on keeps its own checkpoint)
                ln.elapsed += wall
                ln.save(epoch, done)
        for ln in self.lanes:
            if ln.status == "running":
                e, s = max(pos, ln.start)
                ln.mark("interrupted", reason=reason, stopped_at={"epoch": e + 1 if s else e, "step": s})
        self.bar.close()
        stopped = f"{reason}: stopped " + (f"at epoch {epoch + 1} step {done}" if done else f"after epoch {epoch + 1}")
        if len(self.lanes) == 1:
            where = self.lanes[0].rd.path
            raise RunInterrupted(f"{stopped} with a checkpoint; resume=True continues it ({where})",
                                 cli=f"{stopped} with a checkpoint; resume with --resume --out {where}")
        raise RunInterrupted(f"{stopped} with checkpoints of {len(self.lanes)} runs; running the grid again continues them",
                             cli=f"{stopped} with checkpoints of {len(self.lanes)} runs; run the same command again to continue")

    def end_epoch(self, epoch: int, active: list[Any], wall: float, stopping: str | None) -> None:
        for ln in self.healthy(active):
            lr_used = ln.opt.param_groups[0]["lr"]
            ln.sched.step()
            # the lane's own time: all of it when alone; its own work + an equal share of the shared work otherwise
            shared = max(0.0, wall - sum(o.busy for o in active))
            train_time = wall if len(active) == 1 else ln.busy + shared / len(active)
            ln.elapsed += train_time
            # under DDP: rank 0's BN buffers to all ranks, each rank evaluates a shard
            ev = self.rt.evaluate(ln.ctx.student, self.test_x, self.test_y, self.ds.mean, self.ds.std,
                                  batch_size=ln.cfg.eval_batch_size, device=self.device, amp=ln.cfg.amp, channels_last=self.cl)
            m = ln.accum.means()
            rec = {"epoch": epoch + 1, "lr": lr_used, "train": {n: m[n] for n in ln.names},
                   "train_acc": m["acc"], "test_top1": ev["top1"], "test_top5": ev["top5"], "test_loss": ev["loss"],
                   "train_time": train_time, "images_per_s": ln.images / max(train_time, 1e-9)}
            ln.record(rec, checkpoint=(epoch + 1) % ln.cfg.checkpoint_every == 0 or epoch + 1 == ln.cfg.epochs or bool(stopping))
            self.trackers[id(ln)].epoch(rec)
            self.bar.message(f"[{ln.rd.path.name}] epoch {epoch + 1}/{ln.cfg.epochs} loss={m['total']:.4f} train_acc={m['acc']:.2f}% "
                             f"{ln.summary['eval_set']}_acc={ev['top1']:.2f}% (best {ln.best['acc']:.2f}%) {rec['images_per_s']:,.0f} img/s")
            if epoch + 1 == ln.cfg.epochs:
                self.finish(ln)

    def finish(self, ln: Any) -> None:
        h = ln.history
        last = h[-1]
        if ln.rt.writer:
            save_model(ln.rd.model, ln.ctx.student, ln.cfg.student, self.ds, last["test_top1"])
        ln.summary.update(
            last_acc=last["test_top1"], last_top5=last["test_top5"], best_acc=ln.best["acc"], best_epoch=ln.best["epoch"],
            time_s=ln.elapsed,
            images_per_s=sum(r["images_per_s"] * r["train_time"] for r in h) / max(1e-9, sum(r["train_time"] for r in h)),
        )
        ln.mark("finished")

