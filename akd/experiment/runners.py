"""Runners: where a grid's groups of runs train -- in this process, in a pool of processes, or as Ray tasks -- behind
one interface.

A *group* is a list of :class:`~akd.experiment.plan.Task` s trained by one worker call (:func:`_run_group`): one
run, or the runs that see the same batches and teacher (:func:`group_tasks`), trained together with one teacher
forward per batch.  A runner's ``run(groups, redo)`` yields ``(group, summaries)`` as groups finish, a crashed
worker giving failed rows rather than a lost grid; ``train_teacher`` is None or its own way of training a teacher
(the Ray runner trains it as a task); ``close()`` lets go of what it holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..engine.config import RunConfig, config_from_dict
from ..engine.runs import RunDir
from ..errors import AkdError, ConfigError
from .plan import Task

Group = list[Task]


def _run_cell(cfg_dict: dict[str, Any], out: str, device: str | None, threads: int | None, quiet: bool,
              redo: bool = False) -> dict[str, Any]:
    """Worker entry (also used in-process): train one (cell, seed); errors become a failed row.  ``redo``: the
    folder holds a run of another config that ``--force`` replaces (after the new config is validated)."""
    import torch

    from ..engine import train
    from ..engine.trainer import RunInterrupted

    if threads:
        torch.set_num_threads(threads)
    cfg = config_from_dict(cfg_dict)
    if device:
        cfg.device = device
    try:
        return train(cfg, out, force=redo, progress=not quiet)  # the grid's config; an unchanged run resumes or is read back
    except RunInterrupted:
        raise
    except AkdError as e:
        return {"status": "failed", "reason": str(e)}


def _run_group(cfg_dicts: list[dict[str, Any]], outs: list[str], device: str | None, threads: int | None,
               quiet: bool, redo: list[bool] | None = None) -> list[dict[str, Any]]:
    """Worker entry: train runs that share data and teacher in one process (``train_shared``); one run
    is simply :func:`_run_cell`.  Errors become failed rows."""
    import torch

    from ..engine.trainer import RunInterrupted, train_shared

    if len(cfg_dicts) == 1:
        return [_run_cell(cfg_dicts[0], outs[0], device, threads, quiet, bool(redo and redo[0]))]
    if threads:
        torch.set_num_threads(threads)
    cfgs = [config_from_dict(c) for c in cfg_dicts]
    if device:
        for c in cfgs:
            c.device = device
    paths: list[str | Path] = list(outs)
    try:
        return train_shared(cfgs, paths, progress=not quiet, force=redo)
    except RunInterrupted:
        raise
    except AkdError as e:
        out = []
        for o in outs:
            prev = RunDir(o).read_summary() or {}
            out.append(prev if prev.get("status") in ("finished", "failed") else {"status": "failed", "reason": str(e)})
        return out


def share_key(cfg: RunConfig) -> tuple:
    """Runs with equal keys see the same batches and the same teacher, so they can share a process."""
    return cfg.batch_key()


def group_tasks(tasks: list[Task], share_teacher: bool, max_shared: int) -> list[Group]:
    """The worker calls: with ``share_teacher``, the tasks of equal :func:`share_key` together, up to ``max_shared``
    per call; otherwise one task per call."""
    if not share_teacher:
        return [[t] for t in tasks]
    by_key: dict[tuple, Group] = {}
    for t in tasks:
        by_key.setdefault(share_key(t.config), []).append(t)
    step = max(1, max_shared)
    return [g[i:i + max_shared] for g in by_key.values() for i in range(0, len(g), step)]


def _group_args(g: Group, redo: set[str], device: str | None, threads: int | None, quiet: bool) -> tuple:
    """:func:`_run_group`'s arguments for group ``g`` (plain values: they travel to other processes)."""
    return [t.config.to_dict() for t in g], [str(t.out) for t in g], device, threads, quiet, [str(t.out) in redo for t in g]


def _failed(g: Group, err: BaseException) -> list[dict[str, Any]]:
    """The rows of a group whose worker crashed."""
    return [{"status": "failed", "reason": f"{type(err).__name__}: {err}"}] * len(g)


class SerialRunner:
    """Every group in this process, one after the other (``jobs = 1``), with its progress display."""

    train_teacher = None

    def __init__(self, progress: bool):
        self.quiet = not progress

    def run(self, groups: list[Group], redo: set[str]) -> Iterator[tuple[Group, list[dict[str, Any]]]]:
        for g in groups:
            yield g, _run_group(*_group_args(g, redo, None, None, self.quiet))

    def close(self) -> None:
        pass


class ProcessPoolRunner:
    """``jobs`` spawned worker processes sharing the machine's cores; several GPUs (``devices``, default every visible
    one when the grid's device is ``auto``/``cuda``) are dealt to the groups in turn."""

    train_teacher = None

    def __init__(self, jobs: int, devices: list[str] | None, base_device: str):
        self.jobs, self.devices, self.base_device = jobs, devices, base_device

    def _devices(self) -> list[str | None]:
        import torch

        if self.devices is not None:
            return list(self.devices)
        n_gpu = torch.cuda.device_count() if self.base_device in ("auto", "cuda") else 0
        return [f"cuda:{i}" for i in range(n_gpu)] if n_gpu > 1 else [None]

    def run(self, groups: list[Group], redo: set[str]) -> Iterator[tuple[Group, list[dict[str, Any]]]]:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        devices, threads = self._devices(), max(1, (os.cpu_count() or 1) // self.jobs)
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn")) as ex:
            futs = {ex.submit(_run_group, *_group_args(g, redo, devices[i % len(devices)], threads, True)): g
                    for i, g in enumerate(groups)}
            for f in as_completed(futs):
                try:
                    summs = f.result()
                except Exception as e:  # a crashed worker is a failed row, not a lost grid
                    summs = _failed(futs[f], e)
                yield futs[f], summs

    def close(self) -> None:
        pass


class RayGridRunner:
    """Every group a Ray task on the cluster at ``address`` (default: a local Ray), teachers too
    (:mod:`akd.ray_backend`)."""

    def __init__(self, address: str | None, device: str, log: Callable[[str], None]):
        from ..ray_backend import RayRunner

        self.ray = RayRunner(address, device=device, log=log)
        self.train_teacher = self.ray.teacher

    def run(self, groups: list[Group], redo: set[str]) -> Iterator[tuple[Group, list[dict[str, Any]]]]:
        args = lambda g: _group_args(g, redo, self.ray.device, self.ray.threads, True)  # noqa: E731
        for g, summs, err in self.ray.map(_run_group, groups, args):
            yield g, (_failed(g, err) if err is not None else summs)

    def close(self) -> None:
        self.ray.close()


def check_backend(backend: str) -> None:
    """An unknown backend, or Ray missing for ``ray``: a one-line error before anything is written."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown grid backend '{backend}'; valid choices: local, ray")
    if backend == "ray":
        from ..ray_backend import require_ray

        require_ray()


def make_runner(backend: str, *, jobs: int, progress: bool, devices: list[str] | None, address: str | None,
                base_device: str, log: Callable[[str], None]) -> SerialRunner | ProcessPoolRunner | RayGridRunner:
    """The runner for ``backend`` (``local``: serial for ``jobs <= 1``, else a process pool; ``ray``)."""
    if backend == "ray":
        return RayGridRunner(address, base_device, log)
    return SerialRunner(progress) if jobs <= 1 else ProcessPoolRunner(jobs, devices, base_device)
