"""Tests of akd.data: loaders, dev split, synthetic data, augmentation, DeviceLoader."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from akd.data import (
    DATASETS,
    Dataset,
    DeviceLoader,
    apply_crop_flip,
    load_dataset,
    normalize,
    rand_augment,
    random_crop_flip,
    with_dev_split,
)
from akd.data import base as data_base
from akd.data import cifar as cifar_mod
from akd.data import fashion_mnist as fm_mod
from akd.data.randaugment import OPS, op_values
from akd.errors import ConfigError, DataError

FM_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Never read or write the real user cache or $AKD_DATA_DIR in these tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("AKD_DATA_DIR", raising=False)


def _images(n=8, c=3, h=10, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


# ============================================================================ crop + flip


def _ref_crop_flip(x, dy, dx, flip, pad):
    """Per-sample reference: zero-pad, slice [dy:dy+H, dx:dx+W], then flip horizontally."""
    _, _, h, w = x.shape
    out = []
    for i in range(len(x)):
        p = torch.nn.functional.pad(x[i], (pad, pad, pad, pad))
        crop = p[:, int(dy[i]) : int(dy[i]) + h, int(dx[i]) : int(dx[i]) + w]
        out.append(crop.flip(-1) if bool(flip[i]) else crop)
    return torch.stack(out)


@pytest.mark.parametrize("pad,shape", [(4, (3, 32, 32)), (2, (1, 7, 9)), (5, (3, 6, 5))])
def test_random_crop_flip_matches_per_sample_reference(pad, shape):
    x = _images(64, *shape)
    g = torch.Generator().manual_seed(1)
    out, (dy, dx, fl) = random_crop_flip(x, pad, True, g, return_params=True)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, _ref_crop_flip(x, dy, dx, fl, pad))
    # re-applying the returned draws reproduces the views
    assert torch.equal(apply_crop_flip(x, (dy, dx, fl), pad), out)


def test_random_crop_flip_offsets_cover_range_and_flip_rate():
    x = _images(4000, 1, 8, 8)
    g = torch.Generator().manual_seed(3)
    _, (dy, dx, fl) = random_crop_flip(x, 4, True, g, return_params=True)
    assert set(dy.tolist()) == set(range(9)) and set(dx.tolist()) == set(range(9))
    assert 0.45 < fl.float().mean().item() < 0.55
    # no flip requested -> never flipped; pad 0 and no flip -> unchanged
    _, (_, _, fl0) = random_crop_flip(x[:100], 4, False, g, return_params=True)
    assert not fl0.any()
    assert torch.equal(random_crop_flip(x[:100], 0, False, g), x[:100])


def test_random_crop_flip_deterministic_by_generator():
    x = _images(32, 3, 16, 16)
    a = random_crop_flip(x, 4, True, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, 4, True, torch.Generator().manual_seed(7))
    c = random_crop_flip(x, 4, True, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ============================================================================ DeviceLoader


def _loader(n=50, bs=8, **kw):
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 6, 6).contiguous()
    y = torch.arange(n) % 5
    kw.setdefault("mean", (0.5, 0.5, 0.5))
    kw.setdefault("std", (0.25, 0.25, 0.25))
    return DeviceLoader(x, y, bs, device="cpu", seed=kw.pop("seed", 0), shuffle=kw.pop("shuffle", True), **kw)


def test_loader_same_seed_epoch_identical_batches_despite_global_rng():
    a = _loader(augment=True, pad=2)
    b = _loader(augment=True, pad=2)
    torch.manual_seed(0)
    ba = list(a.raw_batches(3))
    torch.manual_seed(12345)
    torch.rand(100)  # other draws in the program must not shift the data stream
    bb = list(b.raw_batches(3))
    assert len(ba) == len(bb) == len(a) == 7
    for (xa, ya), (xb, yb) in zip(ba, bb):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # resuming mid-epoch gives the same tail
    tail = list(a.raw_batches(3, start=4))
    for (xa, ya), (xt, yt) in zip(ba[4:], tail):
        assert torch.equal(xa, xt) and torch.equal(ya, yt)


def test_loader_epochs_differ_and_cover_every_sample_once():
    ld = _loader(n=50, bs=8, drop_last=False)
    orders = []
    for e in range(3):
        ids = torch.cat([xb[:, 0, 0, 0] for xb, _ in ld.raw_batches(e)])
        assert sorted(ids.tolist()) == list(range(50))
        orders.append(ids)
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    # labels travel with their images
    for xb, yb in ld.raw_batches(0):
        assert torch.equal(yb, xb[:, 0, 0, 0].long() % 5)
    # different seed, different order
    other = torch.cat([xb[:, 0, 0, 0] for xb, _ in _loader(seed=1).raw_batches(0)])
    assert not torch.equal(orders[0], other)


def test_loader_len_drop_last_no_shuffle_and_repeat():
    assert len(_loader(n=50, bs=8)) == 7
    ld = _loader(n=50, bs=8, drop_last=True)
    assert len(ld) == 6 and sum(len(y) for _, y in ld.raw_batches(0)) == 48
    ns = _loader(n=20, bs=6, shuffle=False)
    assert torch.cat([y for _, y in ns.raw_batches(5)]).tolist() == [i % 5 for i in range(20)]
    it = _loader(n=20, bs=5)
    first = torch.cat([y for _, y in it.raw_batches(0)])
    assert torch.equal(torch.cat([y for _, y in it.raw_batches(0)]), first)  # an epoch is a pure function of its number


def test_loader_normalises_and_info_reproduces_views():
    ld = _loader(n=30, bs=10, augment=True, pad=2)
    xr, yr, info = next(ld.raw_batches(1, with_info=True))
    xf = ld.to_float(xr)
    assert xf.dtype == torch.float32 and xr.dtype == torch.uint8
    assert torch.allclose(xf, (xr.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert torch.equal(apply_crop_flip(ld.x[info.index], info.crop, 2), xr)


def test_virtual_views_of_loader_batches_are_deterministic():
    """Views come from the engine's (view seed, epoch, step) stream alone (the loader makes none)."""
    from akd.engine import RunConfig
    from akd.engine.loop import virtual_views

    cfg = RunConfig()

    def views(step):
        return [v for x, _ in _loader(n=40, bs=10, augment=True).raw_batches(2) for v in virtual_views(x, 2, cfg, 0, 2, step)]

    a, b, c = views(0), views(0), views(1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))


def test_loader_batch_too_large_and_bad_inputs():
    with pytest.raises(ConfigError, match=r"batch size 64 .*20 samples"):
        _loader(n=20, bs=64)
    with pytest.raises(ConfigError):
        _loader(n=20, bs=0)
    with pytest.raises(ConfigError):
        DeviceLoader(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), 2)


def test_normalize_broadcasts_channels():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = normalize(x, (0.0, 0.1, 0.5), (1.0, 0.2, 0.5))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, (0.2 - 0.1) / 0.2, 1.0]), atol=1e-6)
    one = normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), (0.5,), (0.5,))
    assert torch.allclose(one, torch.ones(1, 1, 2, 2))


# ============================================================================ RandAugment


def _ra(x, op, seed=0, magnitude=9, num_ops=1):
    return rand_augment(x, torch.Generator().manual_seed(seed), num_ops, magnitude, ops=(op,), return_params=True)


def test_rand_augment_shape_dtype_determinism_and_channels():
    for c in (1, 3):
        x = _images(32, c, 16, 16)
        a = rand_augment(x, torch.Generator().manual_seed(0))
        b = rand_augment(x, torch.Generator().manual_seed(0))
        d = rand_augment(x, torch.Generator().manual_seed(1))
        assert a.shape == x.shape and a.dtype == torch.uint8
        assert torch.equal(a, b) and not torch.equal(a, d)
    # every op runs on 1 and 3 channels without error, many slots
    for c in (1, 3):
        out = rand_augment(_images(64, c, 12, 12), torch.Generator().manual_seed(2), num_ops=4, magnitude=30)
        assert out.shape == (64, c, 12, 12)


def test_rand_augment_identity_and_magnitude_zero_leave_images_unchanged():
    x = _images(40, 3, 16, 16)
    assert torch.equal(_ra(x, "identity")[0], x)
    assert torch.equal(rand_augment(x, torch.Generator().manual_seed(0), num_ops=0), x)
    # at bin 0 every op with a magnitude is the identity (solarize's threshold 255 still inverts 255s,
    # autocontrast has no magnitude, as in torchvision)
    pool = [o for o in OPS if o not in ("solarize", "autocontrast")]
    out = rand_augment(x, torch.Generator().manual_seed(0), num_ops=3, magnitude=0, ops=pool)
    assert torch.equal(out, x)
    # color on one channel is the identity
    g1 = _images(16, 1, 8, 8)
    assert torch.equal(_ra(g1, "color")[0], g1)


@pytest.mark.parametrize("magnitude", [9, 25])
def test_rand_augment_brightness_vs_reference(magnitude):
    x = _images(64, 3, 8, 8)
    out, p = _ra(x, "brightness", magnitude=magnitude)
    v = op_values(magnitude, 31, 8, 8)["brightness"][0]
    mags = p.magnitude[:, 0]
    assert torch.allclose(mags.abs(), torch.full_like(mags, v)) and (mags > 0).any() and (mags < 0).any()
    for i in range(len(x)):
        factor = 1.0 + float(p.magnitude[i, 0])
        ref = (x[i].float() * factor).clamp(0, 255).floor().to(torch.uint8)  # trunc like torchvision
        assert torch.equal(out[i], ref)
    assert out.max() <= 255 and out.min() >= 0


def test_rand_augment_solarize_and_posterize_vs_reference():
    x = _images(32, 3, 8, 8)
    x[:, 0, 0, 0] = 170  # exactly on the bin-10 threshold: inverted (>=)
    for m in (9, 10):
        out, p = _ra(x, "solarize", magnitude=m)
        thr = 255.0 - m * 255.0 / 30
        assert torch.allclose(p.magnitude, torch.full_like(p.magnitude, thr))
        for i in range(len(x)):
            ref = torch.where(x[i].float() >= thr, 255 - x[i], x[i])
            assert torch.equal(out[i], ref)
    assert (out[:, 0, 0, 0] == 85).all()
    for m, bits in [(9, 7), (20, 5), (30, 4), (0, 8)]:
        out, p = _ra(x, "posterize", magnitude=m)
        assert int(p.magnitude[0, 0]) == bits
        mask = (0xFF << (8 - bits)) & 0xFF
        ref = torch.from_numpy(x.numpy() & mask)
        assert torch.equal(out, ref)


@pytest.mark.parametrize("op", ["translate_x", "translate_y"])
def test_rand_augment_translate_vs_reference(op):
    x = _images(32, 3, 16, 20)
    for magnitude in (5, 17):
        out, p = _ra(x, op, magnitude=magnitude)
        for i in range(len(x)):
            t = int(float(p.magnitude[i, 0]))  # int() truncation as torchvision
            ref = torch.zeros_like(x[i])
            if op == "translate_x":  # content moves right by t
                if t >= 0:
                    ref[:, :, t:] = x[i][:, :, : 20 - t]
                else:
                    ref[:, :, : 20 + t] = x[i][:, :, -t:]
            else:
                if t >= 0:
                    ref[:, t:, :] = x[i][:, : 16 - t, :]
                else:
                    ref[:, : 16 + t, :] = x[i][:, -t:, :]
            assert torch.equal(out[i], ref), (i, t)


def test_rand_augment_autocontrast_color_contrast_vs_reference():
    x = (_images(16, 3, 8, 8) // 2 + 40).to(torch.uint8)  # values 40..167
    out, _ = _ra(x, "autocontrast")
    for i in range(len(x)):
        lo = x[i].amin(dim=(1, 2), keepdim=True).float()
        hi = x[i].amax(dim=(1, 2), keepdim=True).float()
        ref = ((x[i].float() - lo) * (255.0 / (hi - lo))).clamp(0, 255).to(torch.uint8)
        assert torch.equal(out[i], ref)
        assert int(out[i].amax()) == 255 and int(out[i].amin()) == 0
    out, p = _ra(x, "color", magnitude=20)
    for i in range(len(x)):
        f = 1.0 + float(p.magnitude[i, 0])
        r, gr, b = x[i].float()
        gray = (0.2989 * r + 0.587 * gr + 0.114 * b).floor()
        ref = (f * x[i].float() + (1 - f) * gray).clamp(0, 255).to(torch.uint8)
        assert (out[i].int() - ref.int()).abs().max() <= 1
    assert not torch.equal(out, x)
    g = _images(16, 1, 8, 8)
    out, p = _ra(g, "contrast", magnitude=12)
    for i in range(len(g)):
        f = 1.0 + float(p.magnitude[i, 0])
        m = g[i].float().mean()
        ref = (f * g[i].float() + (1 - f) * m).clamp(0, 255).to(torch.uint8)
        assert (out[i].int() - ref.int()).abs().max() <= 1  # float rounding before truncation


def test_rand_augment_rotate_is_counter_clockwise_and_shear_keeps_top_row():
    x = torch.zeros(1, 1, 21, 21, dtype=torch.uint8)
    x[0, 0, 10, 18] = 255  # right of the centre (10, 10)
    # find a draw with a positive angle (counter-clockwise): the dot moves up (smaller row)
    for seed in range(20):
        out, p = _ra(x, "rotate", seed=seed, magnitude=30)
        if float(p.magnitude[0, 0]) > 0:
            r, c = torch.nonzero(out[0, 0])[0].tolist()
            assert r < 10 and c < 18
            break
    else:
        pytest.fail("no positive rotation drawn")
    # shear_x about the top-left corner moves rows by m*(y+0.5): row 0 barely moves, the last row most
    img = _images(8, 3, 16, 16)
    out, p = _ra(img, "shear_x", magnitude=30)
    for i in range(len(img)):
        m = float(p.magnitude[i, 0])
        shift_last = m * 15.5
        assert torch.equal(out[i, :, 0, 1:-1], img[i, :, 0, 1:-1])
        assert abs(shift_last) > 3 and not torch.equal(out[i, :, 15], img[i, :, 15])


def test_rand_augment_bad_config():
    x = _images(2, 3, 8, 8)
    with pytest.raises(ConfigError, match="magnitude=31"):
        rand_augment(x, torch.Generator(), magnitude=31)
    with pytest.raises(ConfigError, match="solarise"):
        rand_augment(x, torch.Generator(), ops=("solarise",))


# ============================================================================ CIFAR


def _write_cifar100(root: Path, n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        coarse = [f // 5 for f in fine]
        d = {b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine,
             b"coarse_labels": coarse, b"data": data}
        with open(folder / split, "wb") as f:
            pickle.dump(d, f)
        out[split] = (data, fine, coarse)
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f)
    return folder, out


def test_cifar100_pickle_loader_layout(tmp_path):
    _, raw = _write_cifar100(tmp_path)
    ds = load_dataset("cifar100(download=False)", data_dir=str(tmp_path))
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert ds.num_classes == 100 and ds.in_shape == (3, 32, 32)
    assert ds.train_y.tolist() == raw["train"][1] and ds.test_y.tolist() == raw["test"][1]
    data = raw["train"][0]
    # channel-major: pixel (c, h, w) of image i is column 1024*c + 32*h + w
    for i, c, h, w in [(3, 2, 5, 7), (0, 0, 0, 0), (19, 1, 31, 30)]:
        assert int(ds.train_x[i, c, h, w]) == int(data[i, 1024 * c + 32 * h + w])
    assert ds.classes[:2] == ("f0", "f1")
    assert ds.mean == pytest.approx((0.5071, 0.4865, 0.4409))
    coarse = load_dataset("cifar100(download=False,coarse=True)", data_dir=str(tmp_path))
    assert coarse.num_classes == 20 and coarse.train_y.tolist() == raw["train"][2]
    # subsets and $AKD_DATA_DIR lookup
    sub = load_dataset("cifar100(download=False,train_n=8,test_n=3)", data_dir=str(tmp_path))
    assert len(sub.train_y) == 8 and len(sub.test_y) == 3


def _py2_str(b: bytes) -> bytes:
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _py2_int(v: int) -> bytes:
    return b"K" + bytes([v]) if v < 256 else b"M" + struct.pack("<H", v)


def _py2_cifar_pickle(data: np.ndarray, labels, label_key: bytes) -> bytes:
    """Protocol-2 opcodes as Python 2's cPickle wrote the official files (py2 ``str`` keys
    and array bytes, ``numpy.core.multiarray._reconstruct``)."""
    n, d = data.shape
    i, s2 = _py2_int, _py2_str
    dtype = (b"cnumpy\ndtype\n" + s2(b"u1") + i(0) + i(1) + b"\x87R(" + i(3) + s2(b"|") + b"NNN"
             + b"J\xff\xff\xff\xffJ\xff\xff\xff\xff" + i(0) + b"tb")
    arr = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85" + s2(b"b") + b"\x87R"
           + b"(" + i(1) + i(n) + i(d) + b"\x86" + dtype + b"\x89" + s2(data.tobytes()) + b"tb")
    labs = b"](" + b"".join(i(int(v)) for v in labels) + b"e"
    return b"\x80\x02}(" + s2(b"data") + arr + s2(label_key) + labs + b"u."


def test_cifar_reads_python2_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(5)
    data = {k: rng.integers(0, 256, (n, 3072), dtype=np.uint8) for k, n in (("train", 6), ("test", 3))}
    labels = {"train": [0, 5, 99, 42, 7, 1], "test": [3, 2, 1]}
    for k in data:
        (folder / k).write_bytes(_py2_cifar_pickle(data[k], labels[k], b"fine_labels"))
    ds = load_dataset("cifar100(download=False)", data_dir=str(tmp_path))
    assert ds.train_y.tolist() == labels["train"] and ds.test_y.tolist() == labels["test"]
    assert torch.equal(ds.train_x.reshape(6, 3072), torch.from_numpy(data["train"]))
    assert ds.classes is None  # no meta file: names are optional


def test_cifar_akd_data_dir_env(tmp_path, monkeypatch):
    _write_cifar100(tmp_path / "env")
    monkeypatch.setenv("AKD_DATA_DIR", str(tmp_path / "env"))
    assert len(DATASETS.build("cifar100(download=False)").train_y) == 20


def test_cifar10_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    labels = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        lab = rng.integers(0, 10, 4).tolist()
        labels.append(lab)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": lab}, f)
    ds = load_dataset("cifar10(download=False)", data_dir=str(folder))  # data_dir may be the folder itself
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.train_y.tolist() == sum(labels[:5], []) and ds.num_classes == 10


def test_cifar_truncated_and_missing(tmp_path):
    folder, _ = _write_cifar100(tmp_path)
    raw = (folder / "train").read_bytes()
    (folder / "train").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"train.*(truncated|corrupt)"):
        load_dataset("cifar100(download=False)", data_dir=str(tmp_path))
    (tmp_path / "nowhere").mkdir()  # an existing folder without the files (a missing folder is refused earlier)
    with pytest.raises(DataError) as e:
        load_dataset("cifar100(download=False)", data_dir=str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "\n" not in msg and "cifar-100-python.tar.gz" in msg and "--data-dir" in msg


def test_cifar_rejects_code_in_pickles(tmp_path):
    folder, _ = _write_cifar100(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "test", "wb") as f:
        pickle.dump({b"data": Evil(), b"fine_labels": []}, f)
    with pytest.raises(DataError, match="not a CIFAR pickle"):
        load_dataset("cifar100(download=False)", data_dir=str(tmp_path))


def _tarball(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    return path


def test_safe_extract_rejects_escaping_paths_and_links(tmp_path):
    bad = _tarball(tmp_path / "bad.tar.gz", {"../evil.txt": b"x"})
    with pytest.raises(DataError, match="unsafe path"):
        cifar_mod.safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    link = _tarball(tmp_path / "link.tar.gz", {"ok.txt": b"x"}, symlink="cifar-100-python/train")
    with pytest.raises(DataError, match="not a regular file"):
        cifar_mod.safe_extract(link, tmp_path / "out2")


def test_download_verifies_md5_atomically_and_cifar_fetch(tmp_path):
    # build an official-format tarball and serve it through a file:// URL
    src = tmp_path / "src"
    _write_cifar100(src)
    members = {f"cifar-100-python/{n}": (src / "cifar-100-python" / n).read_bytes() for n in ("train", "test", "meta")}
    tar = _tarball(tmp_path / "cifar-100-python.tar.gz", members)
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(DataError, match="checksum"):
        data_base.download(tar.as_uri(), dest, "0" * 32, how_to="get it by hand")
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no partial file left behind
    with pytest.raises(DataError, match="could not download.*get it by hand"):
        data_base.download((tmp_path / "missing.tar.gz").as_uri(), dest, md5, how_to="get it by hand")
    spec = replace(cifar_mod.CIFAR100, url=tar.as_uri(), md5=md5)
    ds = cifar_mod.load_cifar(spec, None, True, None, None, 0)  # downloads into $XDG_CACHE_HOME/akd
    assert ds.train_x.shape == (20, 3, 32, 32)
    cached = data_base.cache_root() / "cifar-100-python"
    assert (cached / "train").is_file() and not (data_base.cache_root() / "cifar-100-python.tar.gz").exists()


# ============================================================================ Fashion-MNIST


def _idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    magic = (0x0800 | arr.ndim) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_fmnist(folder: Path, n_train=30, n_test=10, seed=0, **override: bytes):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test) % 10,
    }
    for name, arr in arrays.items():
        data = override.get(name.split("-")[0] + "_" + name.split("-")[1], _idx_bytes(arr))
        (folder / name).write_bytes(gzip.compress(data))
    return arrays


def test_fashion_mnist_small_idx_from_data_dir(tmp_path):
    arrays = _write_fmnist(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion-mnist(download=False)", data_dir=str(tmp_path))  # finds the sub-folder
    assert ds.train_x.shape == (30, 1, 28, 28) and ds.test_x.shape == (10, 1, 28, 28)
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte.gz"].astype(np.uint8)))
    assert ds.train_y.tolist() == (np.arange(30) % 10).tolist()
    sub = load_dataset("fashion-mnist(download=False,train_n=20)", data_dir=str(tmp_path))
    assert torch.bincount(sub.train_y, minlength=10).tolist() == [2] * 10  # class-balanced subset


def test_fashion_mnist_wrong_magic_and_bad_sizes(tmp_path):
    imgs = np.zeros((30, 28, 28), dtype=np.uint8)
    _write_fmnist(tmp_path / "a", train_images=_idx_bytes(imgs, magic=0x00000804))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz has IDX magic number 0x00000804"):
        load_dataset("fashion-mnist(download=False)", data_dir=str(tmp_path / "a"))
    short = _idx_bytes(imgs)[:-100]
    _write_fmnist(tmp_path / "b", train_images=short)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is truncated"):
        load_dataset("fashion-mnist(download=False)", data_dir=str(tmp_path / "b"))
    _write_fmnist(tmp_path / "c", t10k_labels=_idx_bytes(np.arange(7) % 10))
    with pytest.raises(DataError, match="10 images but .* 7 labels"):
        load_dataset("fashion-mnist(download=False)", data_dir=str(tmp_path / "c"))


def test_fashion_mnist_missing_message(tmp_path, monkeypatch):
    monkeypatch.setattr(fm_mod, "SYSTEM_DIR", str(tmp_path / "no-system"))
    (tmp_path / "empty").mkdir()  # an existing folder without the files (a missing folder is refused earlier)
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist(download=False)", data_dir=str(tmp_path / "empty"))
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "AKD_DATA_DIR" in msg and "\n" not in msg


@pytest.mark.skipif(not (FM_SYSTEM / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_system_copy(tmp_path):
    ds = load_dataset("fashion-mnist(download=False)")
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_y.min() == 0 and ds.train_y.max() == 9 and ds.test_y.dtype == torch.int64
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    assert ds.in_shape == (1, 28, 28) and ds.num_classes == 10 and ds.flip and ds.pad == 4
    assert data_base.channel_stats(ds.train_x[:5000])[0][0] == pytest.approx(0.2860, abs=0.01)
    # a truncated copy of a real file is reported with its name
    for n in fm_mod.FILES.values():
        shutil.copy(FM_SYSTEM / n, tmp_path / n)
    raw = (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated or corrupt.*delete it"):
        load_dataset("fashion-mnist(download=False)", data_dir=str(tmp_path))


# ============================================================================ synthetic


def test_synthetic_deterministic_and_spec_building():
    a = DATASETS.build("synthetic(n=64,classes=4,size=16,channels=1)")
    b = DATASETS.build({"name": "synthetic", "n": 64, "classes": 4, "size": 16, "channels": 1})
    c = DATASETS.build("synthetic(n=64,classes=4,size=16,channels=1,seed=1)")
    assert a.train_x.shape == (64, 1, 16, 16) and a.test_x.shape == (16, 1, 16, 16)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.bincount(a.train_y).tolist() == [16] * 4
    assert len(a.mean) == 1 and 0 < a.std[0] < 1
    assert a.mean == pytest.approx(data_base.channel_stats(a.train_x)[0])
    # train does not depend on test_n
    d = DATASETS.build("synthetic(n=64,classes=4,size=16,channels=1,test_n=40)")
    assert torch.equal(a.train_x, d.train_x) and len(d.test_y) == 40


def test_synthetic_is_learnable_by_nearest_class_mean():
    ds = load_dataset("synthetic(n=1000,test_n=500,classes=10,size=16)")
    xt, xe = ds.train_x.float().flatten(1), ds.test_x.float().flatten(1)
    means = torch.stack([xt[ds.train_y == k].mean(0) for k in range(10)])
    acc = (torch.cdist(xe, means).argmin(1) == ds.test_y).float().mean().item()
    assert acc > 0.4  # chance is 0.1


@pytest.mark.parametrize("spec", ["synthetic(n=0)", "synthetic(classes=1)", "synthetic(size=4)", "synthetic(channels=2)"])
def test_synthetic_validation(spec):
    with pytest.raises(ConfigError):
        DATASETS.build(spec)


def test_unknown_dataset_names_choices():
    with pytest.raises(ConfigError, match="cifar100"):
        load_dataset("cifar-1000")


# ============================================================================ dev split


def _indexed_dataset(n=200, classes=4):
    idx = torch.arange(n)
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    x[:, 0, 0, 0] = (idx % 256).to(torch.uint8)
    x[:, 0, 0, 1] = (idx // 256).to(torch.uint8)
    y = (idx * 7 % classes).long()
    return Dataset("toy", x, y, x[:10], y[:10], classes, (0.5,), (0.5,))


def _ids(x):
    return (x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist()


def test_dev_split_disjoint_sizes_stratified_deterministic():
    ds = _indexed_dataset(400, 4)
    dv = with_dev_split(ds, 0.1, seed=3)
    tr_ids, dev_ids = set(_ids(dv.train_x)), set(_ids(dv.test_x))
    assert dv.eval_name == "dev" and not tr_ids & dev_ids and tr_ids | dev_ids == set(range(400))
    assert len(dev_ids) == 40 and len(tr_ids) == 360
    assert torch.bincount(dv.test_y, minlength=4).tolist() == [10] * 4  # stratified
    # labels still match their images
    assert all(int(y) == i * 7 % 4 for i, y in zip(_ids(dv.test_x), dv.test_y))
    again = with_dev_split(ds, 0.1, seed=3)
    other = with_dev_split(ds, 0.1, seed=4)
    assert torch.equal(again.test_x, dv.test_x) and torch.equal(again.train_y, dv.train_y)
    assert _ids(other.test_x) != _ids(dv.test_x)
    assert dv.mean == ds.mean and dv.num_classes == 4


def test_dev_split_validation_and_load_dataset():
    ds = _indexed_dataset(40, 4)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="dev fraction"):
            with_dev_split(ds, bad, 0)
    with pytest.raises(ConfigError, match="dev fraction"):
        load_dataset("synthetic(n=64)", dev=1.0)
    dv = load_dataset("synthetic(n=200,classes=4,size=8)", dev=0.2, seed=1)
    assert dv.eval_name == "dev" and len(dv.test_y) == 40 and len(dv.train_y) == 160
