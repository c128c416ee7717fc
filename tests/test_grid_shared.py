"""`akd grid --share-teacher` (the default) gives exactly the results of cells trained separately."""

import pandas as pd

from akd.engine import RunConfig
from akd.experiment import Grid, run_grid


def test_shared_grid_equals_separate_grid(tmp_path):
    base = RunConfig(dataset="synthetic(n=128,test_n=32,classes=4,size=16,channels=1,seed=2)", student="cnn_tiny",
                     teacher="cnn_small", epochs=1, teacher_epochs=1, batch_size=32, log_every=1000)
    axes = {"affinity": ["gram", "virtual-relation"], "norm": ["l2", "zs"], "loss": ["mse"]}
    a = run_grid(Grid(base, dict(axes), [0, 1]), tmp_path / "shared", progress=False, log=lambda m: None, share_teacher=True)
    b = run_grid(Grid(base, dict(axes), [0, 1]), tmp_path / "separate", progress=False, log=lambda m: None, share_teacher=False)
    cols = ["cell", "seed", "status", "last_acc", "best_acc", "init_digest", "data_digest"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (a["status"] == "finished").all() and len(a) == 8


def test_grid_file_term_applies_to_a_cell_that_only_has_a_name(tmp_path):
    """A [[cells]] entry without axis values (e.g. the preset cell of an ablation) still gets the [term]."""
    from akd.experiment import grid_from_file

    f = tmp_path / "g.toml"
    f.write_text('seeds = [0]\n[term]\naffinity = "edge"\nnorm = "zs"\nloss = "mse"\n'
                 '[[cells]]\nname = "preset"\n[[cells]]\nname = "l2"\nnorm = "l2"\n')
    cells = grid_from_file(f).cells()
    assert [c.name for c in cells] == ["preset", "l2"]
    for c, norm in zip(cells, ["zs", "l2"]):
        terms = c.config.objective["terms"]
        assert terms[0]["loss"] == "ce" and terms[1]["affinity"] == "edge" and terms[1]["norm"] == norm


def test_resumed_grid_eta_ignores_runs_read_back_from_disk(tmp_path):
    """A resumed grid reads its finished runs back in no time: they must not make the ETA look like zero."""
    base = RunConfig(dataset="synthetic(n=64,test_n=16,classes=4,size=8,channels=1,seed=2)", student="cnn_tiny",
                     teacher="cnn_small", epochs=1, teacher_epochs=1, batch_size=32, log_every=1000)
    axes = {"method": ["ce", "kd"]}
    run_grid(Grid(base, dict(axes), [0]), tmp_path, progress=False, log=lambda m: None, share_teacher=False)
    lines: list[str] = []
    run_grid(Grid(base, dict(axes), [0, 1]), tmp_path, progress=False, log=lines.append, share_teacher=False)
    done = [ln for ln in lines if ln.startswith("[")]
    assert len(done) == 4
    # tasks run ce0, ce1, kd0, kd1; ce0 and kd0 are read back.  Before: "[1/4] ... (ETA 0.0 min)"
    assert done[0].startswith("[1/4] method=ce seed 0") and done[0].endswith("(ETA ?)"), done
    assert all(" min)" in ln for ln in done[1:]) and done[3].endswith("(ETA 0.0 min)"), done


def test_grid_eta_is_the_pace_of_runs_trained_here_times_the_runs_left_to_train(tmp_path):
    from akd.experiment.tables import LiveResults

    base = RunConfig(dataset="synthetic(n=64,test_n=16,classes=4,size=8,channels=1,seed=2)", student="cnn_tiny")
    res = LiveResults(tmp_path, Grid(base, {}, [0]), [], total=10, log=print, already={"a", "b", "c", "d"})
    assert res.eta() == "?"
    res.trained, res.t0 = 2, res.t0 - 240  # 2 runs trained in 4 min; 10 - 4 read back - 2 = 4 left at 2 min each
    assert abs(float(res.eta().split()[0]) - 8.0) < 0.2
    res.trained = 6
    assert res.eta() == "0.0 min"


def test_results_note_when_the_time_column_mixes_shared_and_lone_runs():
    """akd grid trains the runs of a seed together and each reports its share of the group's time: a table whose
    cells were trained in groups of different sizes says so (the times would otherwise look comparable)."""
    from akd.experiment.tables import markdown_table

    rows = [{"cell": c, "seed": s, "status": "finished", "last_acc": 70.0 + s, "best_acc": 71.0, "time_s": t,
             "shared_lanes": k, "teacher_acc": 80.0, "run_dir": ""}
            for c, t, k in (("a", 30.0, 3), ("b", 90.0, 1)) for s in (0, 1)]
    mixed = markdown_table(pd.DataFrame(rows))
    assert "groups here have 1, 3 runs, so the times of cells trained in groups of different sizes do not compare" in mixed
    same = markdown_table(pd.DataFrame([{**r, "shared_lanes": 3} for r in rows]))
    assert "'time / run'" not in same
    assert "'time / run'" not in markdown_table(pd.DataFrame([{k: v for k, v in r.items() if k != "shared_lanes"} for r in rows]))
