"""image-folder: a streamed ImageNet-layout folder of generated JPEG/PNG files (written here into tmp_path).

Determinism, resumption mid-epoch, workers, a 2-process gloo split whose union of shards is the 1-process batch,
equal batches across methods, bad folders, torchvision's crop semantics, and an end-to-end `akd run`."""

from __future__ import annotations

import json
import math
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from akd.data import StreamLoader, load_dataset, train_loader
from akd.data.folder_transforms import eval_resize, eval_view, random_resized_crop_box
from akd.data.image_folder import ImageFolderStream
from akd.errors import ConfigError, DataError
from conftest import run_cli

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

CLASSES, PER_CLASS, VAL_PER_CLASS = 4, 60, 8  # 240 train + 32 val images


def write_folder(root: Path, classes: int = CLASSES, per_class: int = PER_CLASS, val_per_class: int = VAL_PER_CLASS,
                 seed: int = 0) -> Path:
    """root/{train,val}/classK/imgNNN.{jpg,png}: random sizes 12..40 px, a class-dependent colour, every 3rd a PNG."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = (int(v) for v in rng.integers(12, 40, 2))
                a = np.clip(rng.normal(40 + 50 * c, 30, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(a).save(d / f"img{i:03d}.{'png' if i % 3 == 0 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("imgs") / "ds")


def stream(folder: Path, size: int = 16) -> ImageFolderStream:
    ds = load_dataset(f"image-folder(root={folder},size={size},mode=stream)")
    assert isinstance(ds, ImageFolderStream)
    return ds


def batches(loader, epoch: int = 0, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader.raw_batches(epoch, start)]


# ----------------------------------------------------------------------------------------------- layout


def test_layout_classes_sorted_labels_and_shapes(folder):
    ds = stream(folder)
    assert ds.classes == tuple(f"class{c}" for c in range(CLASSES)) and ds.num_classes == CLASSES
    assert len(ds.train_y) == CLASSES * PER_CLASS and len(ds.test_y) == CLASSES * VAL_PER_CLASS
    assert torch.equal(ds.train_y, torch.arange(CLASSES).repeat_interleave(PER_CLASS))  # sorted class folders, files
    assert ds.in_shape == (3, 16, 16) and ds.train_x.shape == (CLASSES * PER_CLASS, 3, 16, 16)
    x = ds.test_x.to("cpu")[3:11]
    assert x.dtype == torch.uint8 and x.shape == (8, 3, 16, 16)


def test_unquoted_path_with_a_space(tmp_path):
    root = write_folder(tmp_path / "my images", classes=2, per_class=3, val_per_class=1)
    ds = load_dataset(f"image-folder(root={root},size=16,mode=stream)")
    assert len(ds.train_y) == 6 and str(root) in ds.source


def test_auto_mode_picks_memory_when_small_and_stream_otherwise(folder):
    small = load_dataset(f"image-folder(root={folder},size=16)")
    assert isinstance(small.train_x, torch.Tensor) and "mode=memory" in small.source and small.pad == 2
    big = load_dataset(f"image-folder(root={folder},size=16,memory_gb=0.0001)")
    assert isinstance(big, ImageFolderStream) and "mode=stream" in big.source
    # memory mode holds each image once at size x size: shorter side to size, centre crop (train and val alike)
    from akd.data import LazyImages

    assert torch.equal(small.train_x[:5], LazyImages(big.train, 16, resize=16)[:5])
    assert small.test_x.shape == big.test_x.shape


# ----------------------------------------------------------------------------------------------- crops (torchvision's)


def test_random_resized_crop_box_within_bounds_and_fallback():
    rng = random.Random(0)
    for _ in range(2000):
        w, h = rng.randint(1, 60), rng.randint(1, 60)
        i, j, ch, cw = random_resized_crop_box(w, h, rng)
        assert 0 <= i and 0 <= j and 0 < ch and 0 < cw and i + ch <= h and j + cw <= w
    # a 1000x10 strip: no draw fits 10 attempts -> central crop clipped to ratio 4/3: h = 10, w = round(10 * 4/3)
    assert random_resized_crop_box(1000, 10, random.Random(1)) == (0, (1000 - 13) // 2, 10, 13)
    assert random_resized_crop_box(10, 1000, random.Random(1)) == ((1000 - 13) // 2, 0, 13, 10)


def test_eval_view_resizes_shorter_side_by_8_7_and_centre_crops():
    assert eval_resize(224) == 256 and eval_resize(32) == 37
    img = Image.fromarray(np.arange(300 * 400 * 3, dtype=np.uint32).reshape(300, 400, 3).astype(np.uint8))
    out = eval_view(img, 224)
    assert out.size == (224, 224)
    ref = img.resize((int(256 * 400 / 300), 256), Image.BILINEAR)  # 341 x 256
    left, top = int(round((341 - 224) / 2.0)), int(round((256 - 224) / 2.0))
    assert np.array_equal(np.asarray(out), np.asarray(ref.crop((left, top, left + 224, top + 224))))


# ----------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_batches_any_workers_other_seed_differs(folder):
    ds = stream(folder)
    a = batches(ds.train_loader(32, device="cpu", seed=5, workers=0))
    b = batches(ds.train_loader(32, device="cpu", seed=5, workers=2))
    c = batches(ds.train_loader(32, device="cpu", seed=6, workers=0))
    assert len(a) == (CLASSES * PER_CLASS) // 32
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, c))
    e1 = batches(ds.train_loader(32, device="cpu", seed=5, workers=0), epoch=1)
    assert not torch.equal(a[0][0], e1[0][0])  # a new epoch: new order and new crops


def test_resume_mid_epoch_gives_the_same_batches(folder):
    loader = stream(folder).train_loader(24, device="cpu", seed=3, workers=1)
    full = batches(loader, epoch=2)
    tail = batches(loader, epoch=2, start=4)
    assert len(tail) == len(full) - 4
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(full[4:], tail))


def test_labels_follow_the_order(folder):
    ds = stream(folder)
    loader = ds.train_loader(16, device="cpu", seed=0, workers=0)
    order = loader.order(0)
    for k, (_, y, info) in enumerate(loader.raw_batches(0, with_info=True)):
        assert torch.equal(info.index, order[k * 16:(k + 1) * 16]) and torch.equal(y, ds.train_y[info.index])
        if k == 2:
            break


def test_engine_loader_is_stream_for_folders_and_device_loader_in_memory(folder):
    from akd.data import DeviceLoader

    assert isinstance(train_loader(stream(folder), 16, device="cpu", seed=0, workers=0), StreamLoader)
    mem = load_dataset(f"image-folder(root={folder},size=16,mode=memory)")
    assert isinstance(train_loader(mem, 16, device="cpu", seed=0), DeviceLoader)


# ----------------------------------------------------------------------------------------------- 2 processes

WORLD = 2


def _shard_worker(rank: int, root: str, out_dir: str) -> None:
    import traceback

    torch.set_num_threads(1)
    out = Path(out_dir) / f"rank{rank}.pt"
    code = 0
    try:
        dist.init_process_group("gloo", init_method=f"file://{out_dir}/init", rank=rank, world_size=WORLD)
        ds = load_dataset(f"image-folder(root={root},size=16,mode=stream)")
        loader = ds.train_loader(32, device="cpu", seed=9, workers=0)  # rank/world from the process group
        rows = loader.local_rows(32)
        got = [(x[rows].clone(), y[rows].clone(), x[: rows.start].clone(), x[rows.stop:].clone())
               for x, y in loader.raw_batches(1)]
        torch.save({"rows": (rows.start, rows.stop), "batches": got}, out)
        dist.barrier()
    except BaseException:  # noqa: BLE001 - reported through the file
        out.with_suffix(".err").write_text(traceback.format_exc())
        code = 1
    sys.stdout.flush()
    os._exit(code)


def test_two_process_shards_union_equals_one_process_batches(folder, tmp_path):
    procs = [tmp.get_context("spawn").Process(target=_shard_worker, args=(r, str(folder), str(tmp_path))) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.exitcode is None:
            p.kill()
    errors = [f.read_text() for f in tmp_path.glob("*.err")]
    assert not errors, "\n".join(errors)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert [r["rows"] for r in ranks] == [(0, 16), (16, 32)]
    ref = batches(stream(folder).train_loader(32, device="cpu", seed=9, workers=0), epoch=1)
    assert len(ranks[0]["batches"]) == len(ref)
    for k, (x, y) in enumerate(ref):
        assert torch.equal(torch.cat([r["batches"][k][0] for r in ranks]), x)  # union of shards = global batch
        assert torch.equal(torch.cat([r["batches"][k][1] for r in ranks]), y)
        for r in ranks:  # other ranks' rows are never decoded (zero placeholders)
            assert not r["batches"][k][2].any() and not r["batches"][k][3].any()


# ----------------------------------------------------------------------------------------------- bad folders


@pytest.mark.parametrize("make,match", [
    (lambda r: r.mkdir(), "train is not a folder"),
    (lambda r: ((r / "train").mkdir(parents=True), (r / "val").mkdir()), "has no class folders"),
    (lambda r: (write_folder(r, 2, 2, 1), (r / "train" / "class9").mkdir()), r"1 class folder\(s\) in .* hold no JPEG/PNG image \(class9\)"),
    (lambda r: (write_folder(r, 2, 2, 1), (r / "val" / "zebra").mkdir()), "class folders that train/ lacks: zebra"),
    (lambda r: (write_folder(r, 2, 2, 1), __import__("shutil").rmtree(r / "val")), "val is not a folder"),
])
def test_bad_folders_are_refused_in_one_line(tmp_path, make, match):
    root = tmp_path / "bad"
    make(root)
    with pytest.raises(DataError, match=match) as ei:
        load_dataset(f"image-folder(root={root},size=16,mode=stream)")
    assert "\n" not in str(ei.value)


def test_missing_root_and_bad_parameters(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"image-folder(root={tmp_path / 'nope'})")
    with pytest.raises(ConfigError, match="mode"):
        load_dataset(f"image-folder(root={tmp_path},mode=disk)")
    with pytest.raises(ConfigError, match=r"unknown decoder 'jpegturbo'.*valid choices: auto, pil, simplejpeg"):
        write_folder(tmp_path / "ok", 2, 2, 1)
        load_dataset(f"image-folder(root={tmp_path / 'ok'},decoder=jpegturbo)")


def test_corrupt_image_stops_with_the_file_named(tmp_path):
    root = write_folder(tmp_path / "c", 2, 8, 1)
    bad = root / "train" / "class1" / "img004.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = stream(root)
    with pytest.raises(DataError, match=f"cannot decode image {bad}") as ei:
        batches(ds.train_loader(16, device="cpu", seed=0, workers=1))
    assert "\n" not in str(ei.value)
    with pytest.raises(DataError, match="cannot decode image"):
        load_dataset(f"image-folder(root={root},size=16,mode=memory)")


def test_dev_split_and_teacher_cache_need_memory(folder):
    with pytest.raises(ConfigError, match="dev split needs an in-memory data set"):
        load_dataset(f"image-folder(root={folder},size=16,mode=stream)", dev=0.1)
    from akd.engine.teacher_cache import TeacherViewCache

    with pytest.raises(ConfigError, match="--teacher-cache needs an in-memory data set"):
        TeacherViewCache.build(torch.nn.Identity(), stream(folder).train_x, pad=0, flip=True, mean=(0,), std=(1,),
                               sources={"logits"}, device=torch.device("cpu"))


# ----------------------------------------------------------------------------------------------- end to end


def test_akd_run_trains_on_a_streamed_folder_with_equal_batches_across_methods(folder, tmp_path):
    spec = f"image-folder(root={folder},size=16,mode=stream)"
    common = ["--dataset", spec, "--student", "cnn_tiny", "--epochs", "1", "--batch-size", "32", "--workers", "1",
              "--quiet"]
    code, out, err = run_cli("run", "--method", "ce", "--out", str(tmp_path / "ce"), *common)
    assert code == 0, err
    code, out2, err = run_cli("run", "--method", "kd", "--teacher", "cnn_tiny", "--teacher-epochs", "1",
                              "--out", str(tmp_path / "kd"), *common)
    assert code == 0, err
    s_ce, s_kd = (json.loads((tmp_path / m / "summary.json").read_text()) for m in ("ce", "kd"))
    assert s_ce["status"] == s_kd["status"] == "finished"
    assert s_ce["data_digest"] == s_kd["data_digest"]  # same order and crops for every method of a seed
    assert math.isfinite(s_ce["last_acc"]) and "image-folder" in out
