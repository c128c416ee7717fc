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
