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
