"""Which cells of a grid share one teacher: exactly those whose teacher config is the same (issue 13,
inconsistency 1: the grid's own key used to leave out weight decay, momentum, amp...).  The virtual-view settings
are not part of a teacher's config: plain CE never draws a virtual view (last test)."""

import pytest

from akd.engine import RunConfig
from akd.engine.teacher import teacher_dir
from akd.experiment import Grid, resolve_shared_teacher, run_config

BASE = RunConfig(dataset="synthetic(n=64,test_n=16,classes=4,size=8,channels=1)", student="cnn_tiny", teacher="cnn_small",
                 objective="kd", epochs=1, batch_size=16)


def teachers_trained(axes: dict) -> tuple[list[RunConfig], list[str]]:
    """The teacher configs a grid over ``axes`` asks to train, and the checkpoint every cell is pointed at."""
    asked: list[RunConfig] = []

    def train_teacher(cfg: RunConfig) -> str:
        asked.append(cfg)
        return f"/teachers/{len(asked)}/model.pt"

    cells = Grid(BASE, axes, [0]).validate().cells()
    teachers = resolve_shared_teacher(BASE, cells, lambda m: None, False, train_teacher=train_teacher)
    assert all(c.config.teacher == "cnn_small" and c.config.teacher_ckpt is None for c in cells)  # cells not rewritten
    return asked, [run_config(c, 0, teachers).teacher_ckpt for c in cells]


@pytest.mark.parametrize("axis, values", [("weight_decay", [5e-4, 1e-3]), ("momentum", [0.9, 0.8]), ("nesterov", [False, True]),
                                          ("lr_decay", [0.1, 0.2]), ("amp", ["auto", "off"]), ("channels_last", ["auto", "off"])])
def test_an_axis_that_changes_the_teacher_recipe_trains_one_teacher_per_value(axis, values):
    asked, ckpts = teachers_trained({axis: values})
    assert len(asked) == 2 and len(set(ckpts)) == 2
    assert len({teacher_dir(c) for c in asked}) == 2  # as `akd run` would: two cache folders


@pytest.mark.parametrize("axis, values", [("method", ["kd", "rkd"]), ("student", ["cnn_tiny", "cnn_small"]),
                                          ("lr", [0.05, 0.1]), ("log_every", [1, 50]),
                                          ("checkpoint_every", [1, 2]), ("ra_magnitude", [9, 5]), ("ra_ops", [2, 1]),
                                          ("ra_pool", [None, ["rotate"]]), ("view_base", ["crop", "original"])])
def test_an_axis_that_leaves_the_teacher_alone_shares_one_teacher(axis, values):
    asked, ckpts = teachers_trained({axis: values})
    assert len(asked) == 1 and len(set(ckpts)) == 1


def test_teacher_recipe_never_reads_the_teacher_cache_and_keeps_its_folder():
    """A teacher has no teacher: its config drops teacher_cache (it printed "teacher cache not used" when a
    --teacher-cache run trained its teacher), and the cache folder's name does not depend on it."""
    from akd.engine.teacher import teacher_config

    base = RunConfig(dataset="synthetic(n=64,classes=4)", student="cnn_tiny", teacher="cnn_small", objective="kd")
    cached = RunConfig(**{**base.to_dict(), "teacher_cache": True})
    assert teacher_config(cached).teacher_cache is False
    assert teacher_dir(cached) == teacher_dir(base)


def test_virtual_view_settings_do_not_change_a_ce_run_so_teachers_ignore_them(tmp_path):
    """The premise of sharing one teacher across RandAugment settings: plain CE (a teacher's objective) draws no
    virtual view, so its losses, accuracy and weights are the same whatever the view settings say."""
    import torch

    from akd.cli import VIEW_FLAGS
    from akd.engine import train
    from akd.engine.config import VIEW_FIELDS

    assert VIEW_FLAGS == VIEW_FIELDS
    runs = []
    for i, kw in enumerate([{}, {"ra_magnitude": 5, "ra_ops": 3, "view_base": "original", "ra_pool": ["rotate"]}]):
        cfg = RunConfig(dataset="synthetic(n=64,test_n=16,classes=4,size=8,channels=1)", student="cnn_tiny",
                        objective="ce", epochs=2, batch_size=16, **kw)
        s = train(cfg, tmp_path / str(i), progress=False)
        losses = (tmp_path / str(i) / "metrics.jsonl").read_text()
        runs.append((s["last_acc"], [ln.split('"train_time"')[0] for ln in losses.splitlines()],
                     torch.load(tmp_path / str(i) / "model.pt", weights_only=False)["state_dict"]))
    assert runs[0][:2] == runs[1][:2]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][2].values(), runs[1][2].values()))
