"""The exact teacher cache returns the online teacher outputs for every crop/flip view."""

import torch

from akd.data import DeviceLoader, load_dataset, normalize
from akd.engine import RunConfig, train
from akd.engine.checkpoint import load_checkpoint
from akd.engine.teacher_cache import TeacherViewCache, clear, eligible
from akd.models import create_model
from akd.objective import build_objective

SYN = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1,seed=5)"


def test_lookup_equals_online_teacher_for_every_batch_view():
    ds = load_dataset(SYN)
    torch.manual_seed(0)
    teacher = create_model("cnn_small", 4, 1).eval()
    cache = TeacherViewCache.build(teacher, ds.train_x, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std,
                                   sources={"logits", "pooled"}, device=torch.device("cpu"), batch_size=40)
    assert cache.num_views == (2 * ds.pad + 1) ** 2 * 2
    loader = DeviceLoader(ds.train_x, ds.train_y, 16, augment=True, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, seed=3)
    worst = 0.0
    for xb, _, info in loader.raw_batches(0, with_info=True):
        with torch.inference_mode():
            online = teacher(normalize(xb, ds.mean, ds.std))
        got = cache.lookup(info.index, info.crop)
        for k in ("logits", "pooled"):
            worst = max(worst, (got[k] - online[k]).abs().max().item())
    assert worst <= 1e-5, worst
    clear()


def test_eligibility():
    assert eligible(build_objective("kd")) and eligible(build_objective("rkd")) and eligible(build_objective("pkt"))
    assert not eligible(build_objective("vrm")) and not eligible(build_objective("sp")) and not eligible(build_objective("ce"))


def test_kd_run_with_cache_matches_online_run(tmp_path):
    base = dict(dataset=SYN, student="cnn_tiny", teacher="cnn_small", epochs=2, teacher_epochs=1, batch_size=16,
                objective="kd", log_every=1000)
    a = train(RunConfig(**base), tmp_path / "online", progress=False)
    b = train(RunConfig(**base, teacher_cache=True), tmp_path / "cached", progress=False)
    wa = load_checkpoint(tmp_path / "online" / "model.pt")["state_dict"]
    wb = load_checkpoint(tmp_path / "cached" / "model.pt")["state_dict"]
    diff = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    assert diff <= 1e-4, diff
    assert abs(a["last_acc"] - b["last_acc"]) <= 3.2  # at most one test image of 32 may flip
    clear()


class _Counting(torch.nn.Module):
    """The teacher, counting its forward calls (a cache hit runs none)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def _build(teacher, ds, store, log=None):
    return TeacherViewCache.build(teacher, ds.train_x, pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std,
                                  sources={"logits", "pooled"}, device=torch.device("cpu"), batch_size=48,
                                  store=store, log=log)


def test_stored_tables_are_reused_by_a_later_process_and_bad_files_are_rebuilt(tmp_path):
    ds = load_dataset(SYN)
    torch.manual_seed(0)
    teacher = _Counting(create_model("cnn_small", 4, 1).eval())
    store = tmp_path / "views"
    msgs = []
    first = _build(teacher, ds, store, msgs.append)
    files = list(store.glob("*.pt"))
    assert len(files) == 1 and teacher.calls == first.num_views * 2  # 96 images at batch 48
    assert any("stored" in m for m in msgs)
    clear()  # a new process: nothing in memory
    teacher.calls = 0
    second = _build(teacher, ds, store, msgs.append)
    assert teacher.calls == 0 and any("reusing" in m for m in msgs)
    for k in first.tables:
        assert torch.equal(first.tables[k], second.tables[k])
    # other weights: another key, another file
    clear()
    other = _Counting(create_model("cnn_small", 4, 1).eval())
    _build(other, ds, store)
    assert other.calls > 0 and len(list(store.glob("*.pt"))) == 2
    # a truncated file is rebuilt (and replaced), with a message
    clear()
    files[0].write_bytes(files[0].read_bytes()[:100])
    msgs.clear()
    teacher.calls = 0
    third = _build(teacher, ds, store, msgs.append)
    assert teacher.calls > 0 and any("ignoring" in m and "rebuilding" in m for m in msgs)
    assert all(torch.equal(first.tables[k], third.tables[k]) for k in first.tables)
    clear()
    teacher.calls = 0
    _build(teacher, ds, store)
    assert teacher.calls == 0  # the rebuilt file is whole again
    clear()


def test_a_store_that_cannot_be_written_costs_only_the_reuse(tmp_path):
    ds = load_dataset(SYN)
    torch.manual_seed(0)
    teacher = create_model("cnn_small", 4, 1).eval()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    msgs = []
    cache = _build(teacher, ds, blocker / "views", msgs.append)
    assert cache.num_views == (2 * ds.pad + 1) ** 2 * 2 and any("could not store" in m for m in msgs)
    clear()
