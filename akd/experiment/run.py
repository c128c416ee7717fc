"""``run_grid``: a grid from its spec to its tables -- checked, planned (teachers resolved once), run by a runner
(serial, process pool or Ray), results written as runs finish.  Re-running the same grid resumes: finished runs
are read back, killed runs restart from their checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import ConfigError
from .plan import Task, finished_before, plan_tasks, preflight, resolve_shared_teacher, stale_runs
from .runners import check_backend, group_tasks, make_runner
from .spec import Cell, Grid, write_grid_file
from .tables import LiveResults


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
    check_backend(backend)  # a missing Ray is a one-line error before anything is written
    grid.validate()
    out = Path(out)
    cells = grid.cells()
    preflight(cells)
    runner = make_runner(backend, jobs=jobs, progress=progress, devices=devices, address=address,
                         base_device=grid.base.device, log=log)
    try:
        tasks, redo = _prepare(grid, out, cells, runner.train_teacher, progress=progress, log=log, force=force)
        results = LiveResults(out, grid, cells, len(tasks), log, already=finished_before(tasks, redo))
        try:
            for g, summs in runner.run(group_tasks(tasks, share_teacher, max_shared), redo):
                for t, summ in zip(g, summs):
                    results.record(t.cell, t.seed, t.out, summ)
        finally:
            df = results.write()
        return df
    finally:
        runner.close()


def _prepare(grid: Grid, out: Path, cells: list[Cell], train_teacher: Callable | None, *, progress: bool,
             log: Callable[[str], None], force: bool) -> tuple[list[Task], set[str]]:
    """Before any student trains: the grid folder and its grid.json, the teachers, the runs with their final configs
    and the folders ``force`` redoes (a folder holding another config is refused here)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"grid folder {out}: cannot create ({e.strerror or e})",
                          cli=f"--out {out}: cannot create ({e.strerror or e})") from None
    for c in cells:
        if c.skipped:
            log(f"skip {c.name}: {c.skipped}")
    teachers = resolve_shared_teacher(grid.base, cells, log, progress, train_teacher=train_teacher)
    tasks = plan_tasks(grid, cells, out, teachers)
    stale = stale_runs(tasks, out, force)
    for name, seed, diff in stale.values():  # --force: replaced when their new run starts (after validation)
        log(f"--force: redoing {name} seed {seed} ({diff or 'other settings'})")
    write_grid_file(grid, out, log)
    return tasks, set(stale)
