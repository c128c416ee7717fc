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

One module per job:

* :mod:`.spec` -- the grid spec (flags or a TOML file) and its cells; grid.json.
* :mod:`.plan` -- checks before anything is written, teachers resolved once, each run's config and folder,
  ``--check``.
* :mod:`.runners` -- where groups of runs train: serial, a process pool or Ray, behind one interface.
* :mod:`.run` -- :func:`run_grid`, from spec to tables.
* :mod:`.tables` -- results.csv/md/png, curves and :func:`report`.
"""

from __future__ import annotations

from .plan import Task, check_grid, preflight, resolve_shared_teacher, run_config, skip_teacherless
from .run import run_grid
from .runners import _run_cell, _run_group, share_key
from .spec import OBJECTIVE_AXES, SPECIAL_AXES, TERM_AXES, Cell, Grid, grid_from_file, split_list
from .tables import epoch_curves, markdown_table, report, summarize, write_plots, write_results

__all__ = [
    "TERM_AXES", "SPECIAL_AXES", "OBJECTIVE_AXES", "Cell", "Grid", "grid_from_file", "split_list",
    "Task", "preflight", "skip_teacherless", "resolve_shared_teacher", "run_config", "check_grid",
    "run_grid", "share_key", "_run_cell", "_run_group",
    "summarize", "markdown_table", "write_results", "write_plots", "epoch_curves", "report",
]
