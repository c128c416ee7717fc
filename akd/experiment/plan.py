"""The grid's plan: which runs it makes, with which config and teacher, into which folders.

Everything is checked before anything is written (:func:`preflight`); each distinct teacher is resolved once (trained
if needed, by the runner when it has its own way) into a checkpoint, and every run that needs it reads that file:
equal footing across cells.  The cells keep the configs the grid made: a run's config (:func:`run_config`) is the
cell's for its seed, with the teacher given as its checkpoint.  A folder holding a run of another config is an error
naming the differences, unless ``force`` redoes it (:func:`stale_runs`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..engine.config import RunConfig, result_differences
from ..engine.runs import RunDir
from ..errors import ConfigError
from .spec import Cell, Grid

NO_TEACHER = "this objective needs a teacher: give --teacher MODEL or --teacher-ckpt PATH"


@dataclass
class Task:
    """One run of the grid: a cell, a seed, the config its run gets and its folder."""

    cell: Cell
    seed: int
    config: RunConfig
    out: Path


def dataset_of(cfg: RunConfig, loaded: dict[str, Any]) -> Any:
    """``cfg``'s data set, loaded once per (spec, folder, dev split) into ``loaded``."""
    from ..data import load_dataset

    key = json.dumps([cfg.dataset, cfg.data_dir, cfg.dev], default=str)
    if key not in loaded:
        loaded[key] = load_dataset(cfg.dataset, data_dir=cfg.data_dir, dev=cfg.dev, seed=0)
    return loaded[key]


def preflight(cells: list[Cell]) -> None:
    """Bad input is an error before anything is written, not a column of failed rows.

    For every runnable cell: the device, the model names, the data set (loaded once per
    distinct spec: missing or corrupt files), the batch size against the training set, a
    given teacher checkpoint (readable, matching classes and input shape), the models' taps and
    the memory estimate of one step (:func:`akd.engine.preflight.check_data_and_teacher`).
    """
    from ..engine.device import resolve_device
    from ..engine.preflight import check_data_and_teacher
    from ..models import MODELS

    data: dict[str, Any] = {}
    checked: set[str] = set()
    for c in cells:
        cfg = c.config
        if cfg is None:
            continue
        resolve_device(cfg.device)
        MODELS.resolve(cfg.student)
        if cfg.teacher:
            MODELS.resolve(cfg.teacher)
        key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
        if key in checked:
            continue
        checked.add(key)
        check_data_and_teacher(cfg, dataset_of(cfg, data))


def skip_teacherless(cells: list[Cell]) -> None:
    """Cells whose objective needs a teacher that the grid does not name are skipped, with the reason."""
    for c in cells:
        cfg = c.config
        if cfg is not None and c.needs_teacher and not (cfg.teacher or cfg.teacher_ckpt):
            c.skipped, c.config = NO_TEACHER, None


def resolve_shared_teacher(base: RunConfig, cells: list[Cell], log: Callable[[str], None], progress: bool,
                           train_teacher: Callable[[RunConfig], str] | None = None) -> dict[str, str]:
    """Train/reuse each teacher the cells need once; ``{teacher identity: checkpoint}``.  Cells that need a teacher
    the grid does not name are skipped (:func:`skip_teacherless`); the others' configs are left as they are.

    Cells share a teacher when their teacher configs are the same (:func:`akd.engine.teacher.teacher_identity`,
    the fingerprint that also names ``akd run``'s cache folder): an axis over the recipe (weight decay, amp,
    RandAugment...) gives one teacher per value, an axis over the student or its objective one teacher.
    ``train_teacher(cfg) -> model.pt path`` replaces the in-process training (the Ray backend runs it as a task).
    """
    from ..engine.teacher import resolve_teacher, teacher_identity
    from ..engine.trainer import train

    skip_teacherless(cells)
    teachers: dict[str, str] = {}
    for c in cells:
        cfg = c.config
        ident = teacher_identity(cfg) if cfg is not None and c.needs_teacher and not cfg.teacher_ckpt else None
        if cfg is None or ident is None or ident in teachers:
            continue
        if train_teacher is not None:
            teachers[ident] = train_teacher(cfg)
        else:
            _, info = resolve_teacher(cfg, dataset_of(cfg, {}), train=train, log=log, progress=progress)
            teachers[ident] = info["teacher_path"]
    return teachers


def planned_teachers(cells: list[Cell]) -> dict[str, str]:
    """The checkpoints :func:`resolve_shared_teacher` would give, without training (``--check``): the cache's."""
    from ..engine.teacher import teacher_dir, teacher_identity

    planned = {}
    for c in cells:
        if c.config is not None and c.needs_teacher and c.config.teacher and not c.config.teacher_ckpt:
            planned[str(teacher_identity(c.config))] = str(teacher_dir(c.config) / "model.pt")
    return planned


def run_config(c: Cell, seed: int, teachers: dict[str, str]) -> RunConfig:
    """The config of cell ``c``'s run for ``seed``: the cell's, with the teacher it needs given as its checkpoint."""
    from ..engine.teacher import teacher_identity

    assert c.config is not None
    cfg = dataclasses.replace(c.config, seed=seed)
    ckpt = teachers.get(teacher_identity(cfg) or "") if c.needs_teacher and not cfg.teacher_ckpt else None
    return dataclasses.replace(cfg, teacher=None, teacher_ckpt=ckpt) if ckpt else cfg


def plan_tasks(grid: Grid, cells: list[Cell], out: Path, teachers: dict[str, str]) -> list[Task]:
    """Every runnable cell x seed of the grid, into ``<out>/cells/<cell>/seed<k>/``."""
    return [Task(c, s, run_config(c, s, teachers), out / "cells" / c.slug / f"seed{s}")
            for c in cells if c.config is not None for s in grid.seeds]


def finished_before(tasks: list[Task], redo: set[str]) -> set[str]:
    """The folders of ``tasks`` finished on disk already (read back when the grid runs, not trained again)."""
    return {str(t.out) for t in tasks
            if str(t.out) not in redo and (RunDir(t.out).read_summary() or {}).get("status") == "finished"}


def stale_runs(tasks: list[Task], out: Path, force: bool) -> dict[str, tuple[str, int, str]]:
    """``{folder: (cell, seed, differences)}`` of the folders holding a started run of another config than the
    grid asks for; a ConfigError naming them unless ``force`` (then they are redone)."""
    stale = {str(d): (name, seed, diff) for name, seed, d, diff in _stale_runs(tasks)}
    if stale and not force:
        name, seed, diff = next(iter(stale.values()))
        held = (f"{out} holds {len(stale)} run(s) of another config than this grid (e.g. {name} seed {seed}: "
                f"{diff or 'other settings'})")
        raise ConfigError(f"grid folder {held}; pass force=True to redo them, or another folder",
                          cli=f"--out {held}; use --force to redo them, or another --out")
    return stale


def check_grid(grid: Grid, out: str | Path, *, force: bool = False) -> list[str]:
    """``--check``: every check :func:`akd.experiment.run_grid` makes before training, and what it would do; trains
    and writes nothing.

    Returns the plan as lines: skipped cells with their reason, each teacher (reuse, train or checkpoint), each
    cell × seed folder (new, read back, continued, redone) and the largest step-memory estimate.
    """
    from ..engine.preflight import folder_plan, step_plan, teacher_plan

    grid.validate()
    out = Path(out)
    cells = grid.cells()
    preflight(cells)
    skip_teacherless(cells)
    lines = [f"grid: {len(cells)} cell(s) x {len(grid.seeds)} seed(s) into {out}"]
    lines += [f"  skip {c.name}: {c.skipped}" for c in cells if c.skipped]
    runnable = [c for c in cells if c.config is not None]
    for teacher in sorted({teacher_plan(c.config) for c in runnable} - {"none needed"}):
        lines.append(f"teacher: {teacher}")
    tasks = plan_tasks(grid, cells, out, planned_teachers(cells))
    stale = stale_runs(tasks, out, force)
    for t in tasks:
        what = f"redone (--force): {stale[str(t.out)][2]}" if str(t.out) in stale else folder_plan(t.config, t.out, force=force)
        lines.append(f"  {t.cell.name} seed {t.seed}: {what}")
    data: dict[str, Any] = {}
    plans = [(*step_plan(cfg, dataset_of(cfg, data)), c.name) for c in runnable if (cfg := c.config) is not None]
    if plans:
        _, plan, name = max(plans, key=lambda p: p[0])
        lines.append(f"step memory (largest, {name}): {plan}")
    lines.append("check passed: nothing was trained or written")
    return lines


def _config_diff(stored: dict[str, Any], cfg: RunConfig, stored_terms: Any = None) -> str:
    """``key: old -> new`` for the result-defining fields in which a stored run's config differs from ``cfg``."""
    diff = result_differences(stored, cfg, stored_terms)
    shown = [f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:4]]
    return ", ".join(shown) + (" ..." if len(diff) > 4 else "")


def _stale_runs(tasks: list[Task]) -> list[tuple[str, int, Path, str]]:
    """The (cell, seed) folders that hold a started run of another config than the grid now asks for."""
    from ..engine.runs import RunDir
    from ..engine.teacher import teacher_file_digest

    stale = []
    for c, s, cfg, d in ((t.cell, t.seed, t.config, t.out) for t in tasks):
        rd = RunDir(d)
        stored = rd.read_config()
        if stored is None or not (rd.summary.exists() or rd.checkpoint.exists()):
            continue
        if not rd.holds(cfg):
            stale.append((c.name, s, d, _config_diff(stored.get("config") or {}, cfg, rd.stored_terms())))
            continue
        was, now = (rd.read_summary() or {}).get("teacher_digest"), teacher_file_digest(cfg)
        if was and now and was != now:
            stale.append((c.name, s, d, f"teacher weights {was} -> {now}"))
    return stale

