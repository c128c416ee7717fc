"""The committed evidence stays this code's: every run folder of every committed grid under benchmarks/results holds
the config the current code builds from that grid's grid.json.  A change to how grids, presets or run configs are
built that would silently make those runs another config (so that re-running benchmarks/run_evidence.sh refuses or
redoes hours of resumable work, or reports runs that are not what the grid now asks for) fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from akd.experiment.plan import _stale_runs, plan_tasks, planned_teachers
from akd.experiment.spec import read_grid_file

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
GRIDS = sorted(p.parent.name for p in RESULTS.glob("*/grid.json"))


def test_the_committed_grids_are_found():
    assert {"fmnist_compare", "fmnist_vrm_ablation", "fmnist_vrm_readings", "fmnist_full_vrm_readings",
            "fmnist_full_compare"} <= set(GRIDS)


@pytest.mark.parametrize("name", GRIDS)
def test_every_started_run_holds_the_config_its_grid_builds_now(name):
    d = RESULTS / name
    grid = read_grid_file(d)
    cells = grid.cells()
    assert not [c.name for c in cells if c.skipped]
    tasks = plan_tasks(grid, cells, d, planned_teachers(cells))
    started = [t for t in tasks if (t.out / "config.json").exists()]
    assert started, f"{name}: no started run"
    stale = _stale_runs(tasks)
    assert not stale, f"{name}: {len(stale)} run(s) now another config, e.g. {stale[0][0]} seed {stale[0][1]}: {stale[0][3]}"


def test_a_changed_result_field_is_caught(tmp_path):
    """The check can fail: a committed run whose stored config differs (here its epochs) is reported."""
    import json
    import shutil

    src = RESULTS / "fmnist_vrm_views"
    shutil.copy(src / "grid.json", tmp_path / "grid.json")
    grid = read_grid_file(tmp_path)
    cells = grid.cells()
    tasks = plan_tasks(grid, cells, tmp_path, planned_teachers(cells))
    t = tasks[0]
    rel = t.out.relative_to(tmp_path)
    t.out.mkdir(parents=True)
    stored = json.loads((src / rel / "config.json").read_text())
    stored["config"]["epochs"] += 1
    (t.out / "config.json").write_text(json.dumps(stored))
    shutil.copy(src / rel / "summary.json", t.out / "summary.json")
    stale = _stale_runs(tasks)
    assert len(stale) == 1 and "epochs" in stale[0][3], stale
