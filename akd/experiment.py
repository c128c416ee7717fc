"""Grids and comparisons: many runs of one engine, resumable, with honest tables.

A *grid* is a base :class:`~akd.engine.RunConfig` and named axes; the cartesian product of
the axes gives *cells*, each run for every seed into its own run directory
``<out>/cells/<cell>/seed<k>/``.  Re-running the same grid resumes: finished runs are read
back, killed runs restart from their checkpoints.  Combinations the core refuses are
skipped and listed with their reason.  Results: ``results.csv`` (one row per cell and seed),
``results.md`` (mean ± std of last and best accuracy per cell), ``results.png`` and ``curves.png``
(:mod:`akd.plot`); all written atomically.

Axes may be the term parts ``affinity, norm, loss, source, weight, pre, redundant,
unreliable, quantile`` (they build one relational term, added to CE), ``method`` (a preset)
or any run-config key (``student``, ``lr``, ``epochs``…).  ``seeds`` is the seed axis.

Equal footing: the teacher is resolved (trained once if needed) before any cell runs and
every cell reads the same checkpoint; per seed, student initialisation and data order
depend on the seed only (see :mod:`akd.engine.trainer`), so they are identical across cells.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .engine.checkpoint import atomic_write_text
from .engine.config import FIELDS, RunConfig, config_from_dict, result_differences
from .errors import AkdError, ConfigError, closest

TERM_AXES = ("affinity", "norm", "loss", "source", "weight", "pre", "redundant", "unreliable", "quantile")
SPECIAL_AXES = ("method", "seeds")


def split_list(text: str) -> list[str]:
    """Split ``"gram,rbf(gamma=0.4,order=2),cosine"`` at top-level commas only."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")
    if len(s) > 80:
        s = s[:60] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return s


@dataclass
class Cell:
    values: dict[str, Any]
    config: RunConfig | None = None
    skipped: str | None = None
    label: str | None = None  # a [[cells]] entry's ``name``

    @property
    def name(self) -> str:
        parts = ([self.label] if self.label else []) + [f"{k}={v}" for k, v in self.values.items() if not (self.label and k in self.own)]
        return ",".join(parts) or "base"

    own: tuple = ()  # keys set by the labelled [[cells]] entry (shown by its label instead)

    @property
    def slug(self) -> str:
        return _slug(self.name)


def _check_axis_value(axis: str, value: Any, base: RunConfig) -> None:
    """Unknown names and ill-typed values are errors (exit 2), not skipped cells."""
    from . import AFFINITIES, LOSSES, METHODS, NORMALIZATIONS
    from .errors import unknown
    from .objective import REPRESENTATIONS
    from .pruning import REDUNDANT, UNRELIABLE

    if axis == "affinity":
        AFFINITIES.resolve(value)
    elif axis in ("norm", "pre"):
        if value not in (None, "none"):
            NORMALIZATIONS.resolve(value)
    elif axis == "loss":
        LOSSES.resolve(value)
    elif axis == "method":
        METHODS.resolve(value)
    elif axis == "source" and value not in REPRESENTATIONS:
        raise unknown("representation", value, REPRESENTATIONS)
    elif axis == "redundant" and value not in REDUNDANT:
        raise unknown("redundant-edge pruning", value, REDUNDANT)
    elif axis == "unreliable" and value not in UNRELIABLE:
        raise unknown("unreliable-edge pruning", value, UNRELIABLE)
    elif axis not in TERM_AXES and axis != "method":
        config_from_dict({axis: value}, base, where=f"grid axis '{axis}'")


@dataclass
class Grid:
    base: RunConfig
    axes: dict[str, list[Any]]
    seeds: list[int]
    ce_weight: float = 1.0
    base_term: dict[str, Any] = field(default_factory=dict)
    #: explicit cells (dicts of axis values), crossed with ``axes``; e.g. a one-factor-at-a-time ablation
    variants: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None

    def validate(self) -> "Grid":
        if not self.seeds:
            raise ConfigError("the seed list is empty; give e.g. --seeds 0,1,2")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {','.join(map(str, self.seeds))} lists a seed twice")
        for i, v in enumerate(self.variants):
            if not isinstance(v, dict) or not v:
                raise ConfigError(f"grid cell {i + 1} must be a non-empty table of axis values")
            if "name" in v and not isinstance(v["name"], str):
                raise ConfigError(f"grid cell {i + 1}: name must be a string")
            for k, val in v.items():
                if k == "name":
                    continue
                if k in self.axes:
                    raise ConfigError(f"grid cell {i + 1} sets '{k}', which is also an axis")
                if k not in TERM_AXES and k != "method" and k.replace("-", "_") not in FIELDS:
                    near = closest(k, list(TERM_AXES) + ["method"] + list(FIELDS))
                    raise ConfigError(f"grid cell {i + 1}: unknown key '{k}'" + (f" (did you mean '{near}'?)" if near else ""))
                _check_axis_value(k, val, self.base)
        names = [json.dumps({k: x for k, x in v.items() if k != "name"}, sort_keys=True, default=str) for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError("the grid lists the same cell twice")
        for k, vals in self.axes.items():
            if k not in TERM_AXES and k != "method" and k.replace("-", "_") not in FIELDS:
                near = closest(k, list(TERM_AXES) + ["method"] + list(FIELDS))
                raise ConfigError(f"unknown grid axis '{k}'" + (f" (did you mean '{near}'?)" if near else ""))
            if k in ("seed", "seeds"):
                raise ConfigError("give seeds with --seeds (or 'seeds' in the grid file), not as an axis")
            if not vals:
                raise ConfigError(f"grid axis '{k}' has no values")
            seen = set()
            for v in vals:
                _check_axis_value(k, v, self.base)
                key = json.dumps(v, sort_keys=True, default=str)
                if key in seen:
                    raise ConfigError(f"grid axis '{k}' lists {v!r} twice")
                seen.add(key)
        return self

    def cells(self) -> list[Cell]:
        from .objective import build_objective, term_list

        keys = list(self.axes)
        out = []
        combos = list(itertools.product(*(self.axes[k] for k in keys))) if keys else [()]
        for variant, combo in itertools.product(self.variants or [{}], combos):
            variant = dict(variant)
            label = variant.pop("name", None)
            values = {**variant, **dict(zip(keys, combo))}
            cell = Cell(values, label=label, own=tuple(variant))
            try:
                term = dict(self.base_term)
                term.update({k: v for k, v in values.items() if k in TERM_AXES})
                others = {k: v for k, v in values.items() if k not in TERM_AXES and k != "method"}
                cfg = config_from_dict(others, self.base, where=f"grid cell {cell.name}")
                if "method" in values or any(k in values for k in TERM_AXES) or self.base_term:
                    terms = []
                    if "method" in values:
                        terms, _ = term_list(values["method"])
                    elif self.ce_weight > 0:
                        terms = [{"loss": "ce", "weight": self.ce_weight}]
                    if any(k in values for k in TERM_AXES) or self.base_term:
                        if "loss" not in term:
                            raise ConfigError("a term axis needs a loss (--loss)")
                        terms.append(term)
                    if "method" in values and len(terms) == len(term_list(values["method"])[0]):
                        cfg.objective = values["method"]
                    else:
                        cfg.objective = {"terms": terms, "name": cell.name}
                build_objective(cfg.objective)
                cfg.validate()
                cell.config = cfg
            except ConfigError as e:
                cell.skipped = str(e)
            out.append(cell)
        return out


def grid_from_file(path: str | Path, base: RunConfig | None = None) -> Grid:
    """A TOML grid: ``[base]`` (run-config keys, or ``config = "file.toml"``), ``[axes]`` lists, ``seeds``."""
    from .engine.config import load_config, tomllib

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read grid file {p}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    valid = ("base", "axes", "cells", "seeds", "ce_weight", "term", "title")
    unknown_keys = [k for k in data if k not in valid]
    if unknown_keys:
        raise ConfigError(f"{p}: unknown key '{unknown_keys[0]}'; valid keys: {', '.join(valid)}")
    base_d = dict(data.get("base", {}))
    cfg = base or RunConfig()
    if "config" in base_d:
        cfg = load_config(p.parent / base_d.pop("config"), cfg)
    cfg = config_from_dict(base_d, cfg, where=str(p))
    axes = data.get("axes", {})
    if not isinstance(axes, dict) or any(not isinstance(v, list) for v in axes.values()):
        raise ConfigError(f"{p}: [axes] must map axis names to lists of values")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{p}: seeds must be a list of integers")
    cells = data.get("cells", [])
    if not isinstance(cells, list):
        raise ConfigError(f"{p}: [[cells]] must be an array of tables")
    return Grid(cfg, dict(axes), seeds, float(data.get("ce_weight", 1.0)), dict(data.get("term", {})),
                [dict(c) for c in cells], data.get("title"))


# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------
def _run_cell(cfg_dict: dict[str, Any], out: str, device: str | None, threads: int | None, quiet: bool,
              redo: bool = False) -> dict[str, Any]:
    """Worker entry (also used in-process): train one (cell, seed); errors become a failed row.  ``redo``: the
    folder holds a run of another config that ``--force`` replaces (after the new config is validated)."""
    import torch

    from .engine import train
    from .engine.trainer import RunInterrupted

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

    from .engine.trainer import RunInterrupted, train_shared

    if len(cfg_dicts) == 1:
        return [_run_cell(cfg_dicts[0], outs[0], device, threads, quiet, bool(redo and redo[0]))]
    if threads:
        torch.set_num_threads(threads)
    cfgs = [config_from_dict(c) for c in cfg_dicts]
    if device:
        for c in cfgs:
            c.device = device
    try:
        return train_shared(cfgs, outs, progress=not quiet, force=redo)
    except RunInterrupted:
        raise
    except AkdError as e:
        out = []
        for o in outs:
            try:
                prev = json.loads((Path(o) / "summary.json").read_text())
            except (OSError, ValueError):
                prev = {}
            out.append(prev if prev.get("status") in ("finished", "failed") else {"status": "failed", "reason": str(e)})
        return out


def share_key(cfg: RunConfig) -> tuple:
    """Runs with equal keys see the same batches and the same teacher, so they can share a process."""
    return cfg.batch_key()


def preflight(cells: list[Cell]) -> None:
    """Bad input is an error before anything is written, not a column of failed rows.

    For every runnable cell: the device, the model names, the data set (loaded once per
    distinct spec: missing or corrupt files), the batch size against the training set, a
    given teacher checkpoint (readable, matching classes and input shape), the models' taps and
    the memory estimate of one step (:func:`akd.engine.preflight.check_data_and_teacher`).
    """
    from .data import load_dataset
    from .engine.device import resolve_device
    from .engine.preflight import check_data_and_teacher
    from .models import MODELS

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
        dkey = json.dumps([cfg.dataset, cfg.data_dir, cfg.dev], default=str)
        if dkey not in data:
            data[dkey] = load_dataset(cfg.dataset, data_dir=cfg.data_dir, dev=cfg.dev, seed=0)
        check_data_and_teacher(cfg, data[dkey])


def skip_teacherless(cells: list[Cell]) -> None:
    """Cells whose objective needs a teacher that the grid does not name are skipped, with the reason."""
    from .objective import build_objective

    for c in cells:
        cfg = c.config
        if cfg is not None and not (cfg.teacher or cfg.teacher_ckpt) and build_objective(cfg.objective).needs_teacher:
            c.skipped, c.config = "this objective needs a teacher: give --teacher MODEL or --teacher-ckpt PATH", None


def resolve_shared_teacher(base: RunConfig, cells: list[Cell], log: Callable[[str], None], progress: bool,
                           train_teacher: Callable[[RunConfig], str] | None = None) -> None:
    """Train/reuse each teacher once and point every cell that needs it at that checkpoint.

    Cells share a teacher when their teacher configs are the same (:func:`akd.engine.teacher.teacher_identity`,
    the fingerprint that also names ``akd run``'s cache folder): an axis over the recipe (weight decay, amp,
    RandAugment...) gives one teacher per value, an axis over the student or its objective one teacher.

    ``train_teacher(cfg) -> model.pt path`` replaces the in-process training (the Ray backend runs it as a task).
    """
    from .data import load_dataset
    from .engine.teacher import resolve_teacher, teacher_identity
    from .engine.trainer import train
    from .objective import build_objective

    needs = [c for c in cells if c.config is not None and build_objective(c.config.objective).needs_teacher]
    if not needs:
        return
    groups: dict[str | None, list[Cell]] = {}
    for c in needs:  # one teacher per identity: the teacher config's fingerprint, as `akd run` names its cache folder
        groups.setdefault(teacher_identity(c.config), []).append(c)
    for cs in groups.values():
        cfg = cs[0].config
        if cfg.teacher_ckpt:
            continue
        if not cfg.teacher:
            skip_teacherless(cs)
            continue
        if train_teacher is not None:
            info = {"teacher_path": train_teacher(cfg)}
        else:
            ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, dev=cfg.dev, seed=0)
            _, info = resolve_teacher(cfg, ds, train=train, log=log, progress=progress)
        for c in cs:
            c.config = dataclasses.replace(c.config, teacher=None, teacher_ckpt=info["teacher_path"])


def run_grid(grid: Grid, out: str | Path, *, jobs: int = 1, progress: bool = True,
             log: Callable[[str], None] = print, devices: list[str] | None = None,
             share_teacher: bool = False, max_shared: int = 16, backend: str = "local",
             address: str | None = None, force: bool = False) -> pd.DataFrame:
    """Run (or resume) every cell × seed; write results.csv/md/png; return the results frame.

    A run folder of ``out`` that holds a run of another config (the grid, its base or a cell changed since
    it was trained) is never reported as this grid's: that is a ConfigError naming the differences, before
    anything is trained, unless ``force``, which redoes those runs.

    ``share_teacher``: runs that see the same batches (same seed, data, batch size, teacher) train together
    in one process, up to ``max_shared`` students at a time, with one teacher forward per batch; each
    result equals the separately trained run (see :func:`akd.engine.trainer.train_shared`).

    ``backend``: ``"local"`` (this machine, ``jobs`` processes) or ``"ray"`` (each group of runs is a Ray task
    on the cluster at ``address``, default a local Ray; see :mod:`akd.ray_backend`).  Same run directories and
    results files either way.
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown grid backend '{backend}'; valid choices: local, ray")
    if backend == "ray":
        from .ray_backend import require_ray

        require_ray()  # a missing Ray is a one-line error before anything is written
    grid.validate()
    out = Path(out)
    cells = grid.cells()
    preflight(cells)
    runner = None
    if backend == "ray":
        from .ray_backend import RayRunner

        runner = RayRunner(address, device=grid.base.device, log=log)
    try:
        return _run_grid(grid, out, cells, jobs=jobs, progress=progress, log=log, devices=devices, force=force,
                         share_teacher=share_teacher, max_shared=max_shared, runner=runner)
    finally:
        if runner is not None:
            runner.close()


def check_grid(grid: Grid, out: str | Path, *, force: bool = False) -> list[str]:
    """``--check``: every check :func:`run_grid` makes before training, and what it would do; trains and writes nothing.

    Returns the plan as lines: skipped cells with their reason, each teacher (reuse, train or checkpoint), each
    cell × seed folder (new, read back, continued, redone) and the largest step-memory estimate.
    """
    from .data import load_dataset
    from .engine.preflight import folder_plan, step_plan, teacher_plan
    from .engine.teacher import teacher_dir
    from .objective import build_objective

    grid.validate()
    out = Path(out)
    cells = grid.cells()
    preflight(cells)
    skip_teacherless(cells)
    lines = [f"grid: {len(cells)} cell(s) x {len(grid.seeds)} seed(s) into {out}"]
    lines += [f"  skip {c.name}: {c.skipped}" for c in cells if c.skipped]
    runnable = [c for c in cells if c.config is not None]
    for t in sorted({teacher_plan(c.config) for c in runnable} - {"none needed"}):
        lines.append(f"teacher: {t}")
    tasks = []
    for c in runnable:
        for s in grid.seeds:
            cfg = dataclasses.replace(c.config, seed=s)
            if cfg.teacher and not cfg.teacher_ckpt and build_objective(cfg.objective).needs_teacher:  # as resolve_shared_teacher will
                cfg = dataclasses.replace(cfg, teacher=None, teacher_ckpt=str(teacher_dir(cfg) / "model.pt"))
            tasks.append((c, s, cfg, out / "cells" / c.slug / f"seed{s}"))
    stale = {str(d): (name, seed, diff) for name, seed, d, diff in _stale_runs(tasks)}
    if stale and not force:
        name, seed, diff = next(iter(stale.values()))
        raise ConfigError(f"--out {out} holds {len(stale)} run(s) of another config than this grid (e.g. {name} seed {seed}: "
                          f"{diff or 'other settings'}); use --force to redo them, or another --out")
    for c, s, cfg, d in tasks:
        what = f"redone (--force): {stale[str(d)][2]}" if str(d) in stale else folder_plan(cfg, d, force=force)
        lines.append(f"  {c.name} seed {s}: {what}")
    data: dict[str, Any] = {}
    plans = []
    for c in runnable:
        key = json.dumps([c.config.dataset, c.config.data_dir, c.config.dev], default=str)
        if key not in data:
            data[key] = load_dataset(c.config.dataset, data_dir=c.config.data_dir, dev=c.config.dev, seed=0)
        plans.append((*step_plan(c.config, data[key]), c.name))
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


def _stale_runs(tasks: list[tuple]) -> list[tuple[str, int, Path, str]]:
    """The (cell, seed) folders that hold a started run of another config than the grid now asks for."""
    from .engine.teacher import teacher_file_digest
    from .engine.runs import RunDir

    stale = []
    for c, s, cfg, d in tasks:
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


def _run_grid(grid: Grid, out: Path, cells: list[Cell], *, jobs: int, progress: bool, log: Callable[[str], None],
              devices: list[str] | None, share_teacher: bool, max_shared: int, runner: Any, force: bool = False) -> pd.DataFrame:
    import torch

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create ({e.strerror or e})") from None
    skipped = [c for c in cells if c.skipped]
    for c in skipped:
        log(f"skip {c.name}: {c.skipped}")
    resolve_shared_teacher(grid.base, cells, log, progress, train_teacher=runner.teacher if runner is not None else None)
    # the cells' final configs (teacher resolved to its checkpoint): a folder holding another config is caught here
    tasks = []
    for c in cells:
        if c.config is None:
            continue
        for s in grid.seeds:
            cfg = dataclasses.replace(c.config, seed=s)
            tasks.append((c, s, cfg, out / "cells" / c.slug / f"seed{s}"))
    stale = _stale_runs(tasks)
    if stale and not force:
        name, seed, d, diff = stale[0]
        raise ConfigError(f"--out {out} holds {len(stale)} run(s) of another config than this grid (e.g. {name} seed {seed}: "
                          f"{diff or 'other settings'}); use --force to redo them, or another --out")
    redo = {str(d) for _, _, d, _ in stale}  # --force: replaced when their new run starts (after validation)
    for name, seed, _, diff in stale:
        log(f"--force: redoing {name} seed {seed} ({diff or 'other settings'})")
    spec = {"axes": grid.axes, "seeds": grid.seeds, "base": grid.base.to_dict(), "ce_weight": grid.ce_weight,
            "base_term": grid.base_term, "variants": grid.variants, "title": grid.title}
    old = out / "grid.json"
    if old.exists():
        try:
            prev = json.loads(old.read_text())
        except ValueError:
            prev = None
        keys = ("axes", "base", "ce_weight", "base_term", "variants")
        if prev and {k: prev.get(k) for k in keys} != json.loads(json.dumps({k: spec[k] for k in keys}, default=str)):
            log(f"note: {out} held another grid; runs whose config is unchanged are kept")
    # not write_json: its sorted keys would reorder the axes (and cell values), and cell names and
    # folders depend on that order (akd report rebuilds them from this file)
    atomic_write_text(old, json.dumps(spec, indent=2, default=str) + "\n")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    t0 = time.perf_counter()
    if devices is None:
        n_gpu = torch.cuda.device_count() if grid.base.device in ("auto", "cuda") else 0
        devices = [f"cuda:{i}" for i in range(n_gpu)] if n_gpu > 1 else [None]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None

    def record(c: Cell, s: int, d: Path, summ: dict[str, Any]) -> None:
        rows[(c.name, s)] = _row(c, s, d, summ)
        done = len(rows)
        el = time.perf_counter() - t0
        eta = el / done * (len(tasks) - done)
        st = summ.get("status")
        acc = f"last {summ['last_acc']:.2f}% best {summ['best_acc']:.2f}%" if st == "finished" else f"{st}: {summ.get('reason', '')}"
        log(f"[{done}/{len(tasks)}] {c.name} seed {s}: {acc}  (ETA {eta / 60:.1f} min)")
        write_results(out, _frame(cells, grid.seeds, rows), grid, title=grid.title)

    groups: list[list[tuple]] = []
    if share_teacher:
        by_key: dict[tuple, list[tuple]] = {}
        for t in tasks:
            by_key.setdefault(share_key(t[2]), []).append(t)
        for g in by_key.values():
            groups += [g[i:i + max_shared] for i in range(0, len(g), max(1, max_shared))]
    else:
        groups = [[t] for t in tasks]

    def submit_args(g: list[tuple], dev, thr, quiet):
        return [t[2].to_dict() for t in g], [str(t[3]) for t in g], dev, thr, quiet, [str(t[3]) in redo for t in g]

    try:
        if runner is not None:  # Ray: every group is a task; results arrive as tasks finish
            for g, summs, err in runner.map(_run_group, groups, lambda g: submit_args(g, runner.device, runner.threads, True)):
                if err is not None:  # a crashed task is a failed row, not a lost grid
                    summs = [{"status": "failed", "reason": f"{type(err).__name__}: {err}"}] * len(g)
                for (c, s, _, d), summ in zip(g, summs):
                    record(c, s, d, summ)
        elif jobs <= 1:
            for g in groups:
                for (c, s, _, d), summ in zip(g, _run_group(*submit_args(g, None, None, not progress))):
                    record(c, s, d, summ)
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
                futs = {}
                for i, g in enumerate(groups):
                    dev = devices[i % len(devices)]
                    futs[ex.submit(_run_group, *submit_args(g, dev, threads, True))] = g
                for f in as_completed(futs):
                    g = futs[f]
                    try:
                        summs = f.result()
                    except Exception as e:  # a crashed worker is a failed row, not a lost grid
                        summs = [{"status": "failed", "reason": f"{type(e).__name__}: {e}"}] * len(g)
                    for (c, s, _, d), summ in zip(g, summs):
                        record(c, s, d, summ)
    finally:
        df = _frame(cells, grid.seeds, rows)
        write_results(out, df, grid, title=grid.title)
    return df


def _row(c: Cell, seed: int, d: Path, s: dict[str, Any]) -> dict[str, Any]:
    r = {"cell": c.name, **{k: str(v) for k, v in c.values.items()}, "seed": seed, "status": s.get("status", "?"),
         "last_acc": s.get("last_acc"), "best_acc": s.get("best_acc"), "best_epoch": s.get("best_epoch"),
         "teacher_acc": s.get("teacher_acc"), "time_s": s.get("time_s"), "images_per_s": s.get("images_per_s"),
         "init_digest": s.get("init_digest"), "data_digest": s.get("data_digest"), "run_dir": str(d), "reason": s.get("reason", ""),
         "run_dataset": s.get("dataset"), "run_teacher": s.get("teacher"), "run_student": s.get("student")}
    return r


def _frame(cells: list[Cell], seeds: list[int], rows: dict[tuple[str, int], dict[str, Any]]) -> pd.DataFrame:
    out = []
    for c in cells:
        if c.skipped:
            out.append({"cell": c.name, **{k: str(v) for k, v in c.values.items()}, "seed": None, "status": "skipped", "reason": c.skipped})
            continue
        for s in seeds:
            out.append(rows.get((c.name, s)) or {"cell": c.name, **{k: str(v) for k, v in c.values.items()}, "seed": s, "status": "pending"})
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------
# tables and plots
# ------------------------------------------------------------------------------------------
def _pm(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell: n finished seeds, mean ± std (sample std, ddof=1) of last and best accuracy, mean time."""
    fin = df[df["status"] == "finished"].copy()
    cells = list(dict.fromkeys(df["cell"]))
    out = []
    for c in cells:
        g = fin[fin["cell"] == c]
        allc = df[df["cell"] == c]
        n = len(g)
        last = pd.to_numeric(g["last_acc"]) if n else pd.Series(dtype=float)
        best = pd.to_numeric(g["best_acc"]) if n else pd.Series(dtype=float)
        out.append({
            "cell": c, "n": n, "of": int(allc["seed"].notna().sum()),
            "last_mean": last.mean() if n else float("nan"), "last_std": last.std(ddof=1) if n > 1 else 0.0,
            "best_mean": best.mean() if n else float("nan"), "best_std": best.std(ddof=1) if n > 1 else 0.0,
            "time_s": pd.to_numeric(g["time_s"]).mean() if n else float("nan"),
            "status": "skipped" if (allc["status"] == "skipped").all() else ("done" if n == len(allc) else "partial"),
        })
    return pd.DataFrame(out)


def markdown_table(df: pd.DataFrame, title: str = "") -> str:
    s = summarize(df)
    teacher = pd.to_numeric(df.get("teacher_acc", pd.Series(dtype=float)), errors="coerce").dropna()
    lines = []
    if title:
        lines += [f"# {title}", ""]
    if len(teacher):
        lines += [f"Teacher accuracy: {teacher.iloc[0]:.2f}%", ""]
    from .published import published_for_cells

    pub = published_for_cells(df)  # cells whose (dataset, teacher, student, method) has a published accuracy
    extra = " published (%) | last − published |" if pub else ""
    lines += ["| cell | seeds | last acc (%) | best acc (%) | time / run (s) |" + extra,
              "|---|---|---|---|---|" + ("---|---|" if pub else "")]
    for _, r in s.iterrows():
        if r["status"] == "skipped":
            reason = df[df["cell"] == r["cell"]]["reason"].iloc[0]
            lines.append(f"| {r['cell']} | skipped | {reason} | | |" + (" | |" if pub else ""))
            continue
        t = "-" if math.isnan(r["time_s"]) else f"{r['time_s']:.2f}"
        p = pub.get(r["cell"])
        more = "" if not pub else (" | |" if p is None or r["n"] == 0 else f" {p['acc']:.2f} | {r['last_mean'] - p['acc']:+.2f} |")
        lines.append(f"| {r['cell']} | {r['n']}/{r['of']} | {_pm(r['last_mean'], r['last_std'], r['n'])} | "
                     f"{_pm(r['best_mean'], r['best_std'], r['n'])} | {t} |" + more)
    lines += ["", "mean ± sample std over seeds (ddof=1); 'last' = final epoch, 'best' = best epoch on the evaluation set."]
    if pub:
        sources = sorted({p["source"] for p in pub.values()})
        lines += ["'published': top-1 of the same teacher/student pair in the literature "
                  f"(experiments/<dataset>/published.toml): {'; '.join(sources)}."]
    return "\n".join(lines) + "\n"


def write_results(out: Path, df: pd.DataFrame, grid: Grid | None = None, title: str | None = None,
                  baseline: str | None = None) -> None:
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    atomic_write_text(out / "results.md", markdown_table(df, title or f"Results: {out.name}"))
    write_plots(out, df, title=title or out.name, baseline=baseline)


def epoch_curves(df: pd.DataFrame) -> dict[str, list[list[float]]]:
    """Per cell, per run (seed) with a ``metrics.jsonl``: the evaluation accuracy of epochs 1, 2, … (finished,
    interrupted and failed runs alike: a run contributes the epochs it evaluated)."""
    curves: dict[str, list[list[float]]] = {}
    for _, r in df.iterrows():
        run_dir = r.get("run_dir")
        if not isinstance(run_dir, str) or not run_dir:
            continue
        acc: dict[int, float] = {}
        try:
            lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                rec = json.loads(line)
                acc[int(rec["epoch"])] = float(rec["test_top1"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a killed run
        if acc:
            curves.setdefault(str(r["cell"]), []).append([acc[e] for e in range(1, max(acc) + 1) if e in acc])
    return curves


def _eval_set(df: pd.DataFrame) -> str:
    """The evaluation set the runs report ("test", or "dev" with --dev), from the first readable summary."""
    for run_dir in df.get("run_dir", pd.Series(dtype=str)).dropna():
        try:
            return str(json.loads((Path(str(run_dir)) / "summary.json").read_text()).get("eval_set", "test"))
        except (OSError, ValueError, AttributeError):
            continue
    return "test"


def write_plots(out: Path, df: pd.DataFrame, title: str = "", baseline: str | None = None) -> list[Path]:
    """``results.png`` (mean ± std per cell) and ``curves.png`` (accuracy per epoch, mean and ± std band over
    seeds) into ``out``, atomically; returns the files written (none before a run has finished an epoch)."""
    from .engine.checkpoint import atomic_write_bytes
    from .plot import curves_plot, results_plot

    written = []
    teacher = pd.to_numeric(df.get("teacher_acc", pd.Series(dtype=float)), errors="coerce").dropna()
    t_acc = float(teacher.iloc[0]) if len(teacher) else None
    s = summarize(df)
    s = s[s["n"] > 0]
    if len(s):
        png = results_plot(list(s["cell"]), list(s["last_mean"]), list(s["last_std"]), list(s["best_mean"]), list(s["best_std"]),
                           n=list(s["n"]), title=title, teacher_acc=t_acc, baseline=baseline)
        atomic_write_bytes(out / "results.png", png)
        written.append(out / "results.png")
    curves = epoch_curves(df)
    if curves:
        eval_set = _eval_set(df)
        atomic_write_bytes(out / "curves.png", curves_plot(curves, title=title, eval_set=eval_set, teacher_acc=t_acc))
        written.append(out / "curves.png")
    return written


def _axes_in_order(d: Path, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The axes in the order the grid ran them (cell names and folders depend on it).

    grid.json keeps that order; one written with sorted keys (by older versions) is matched
    against the cell folders that exist.
    """
    def hits(order: tuple[str, ...]) -> int:
        cand = {k: axes[k] for k in order}
        return sum((d / "cells" / Cell(dict(zip(cand, combo))).slug).is_dir() for combo in itertools.product(*cand.values()))

    if not axes or hits(tuple(axes)) or len(axes) > 6:
        return dict(axes)
    best = max(itertools.permutations(axes), key=hits)
    return {k: axes[k] for k in best}


def report(directory: str | Path, baseline: str | None = None, metric: str = "last_acc") -> pd.DataFrame:
    """Rebuild results.csv/md/png and curves.png of a grid or compare directory from its run directories.

    ``baseline``: a cell name; then also ``stats_vs_<cell>.md``, the differences to it paired by seed with a
    paired t-test (:mod:`akd.stats`), and the baseline drawn in results.png.  Only reads the runs.
    """
    d = Path(directory)
    spec_path = d / "grid.json"
    if not spec_path.exists():
        raise ConfigError(f"{d} is not a grid or compare directory (no grid.json)")
    try:
        spec = json.loads(spec_path.read_text())
        base = config_from_dict(spec["base"], where=str(spec_path))
        axes = _axes_in_order(d, spec["axes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{spec_path} is damaged ({type(e).__name__}: {e}); re-run the grid to rewrite it") from None
    grid = Grid(base, axes, spec["seeds"], spec.get("ce_weight", 1.0), spec.get("base_term", {}), spec.get("variants", []),
                spec.get("title"))
    cells = grid.cells()
    rows = {}
    for c in cells:
        if c.skipped:
            continue
        for s in grid.seeds:
            rd = d / "cells" / c.slug / f"seed{s}"
            try:
                summ = json.loads((rd / "summary.json").read_text())
            except (OSError, ValueError):
                continue
            rows[(c.name, s)] = _row(c, s, rd, summ)
    df = _frame(cells, grid.seeds, rows)
    table = None
    if baseline is not None:  # a bad name or metric is an error before anything is written
        from .stats import paired_differences, stats_file, stats_markdown

        table = paired_differences(df, baseline, metric)
    write_results(d, df, grid, title=spec.get("title"), baseline=baseline)
    if table is not None:
        atomic_write_text(stats_file(d, str(baseline), metric), stats_markdown(table, str(baseline), metric))
    return df
