"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70 000 grey 28×28 images, 10 classes.

Files: the four gzip'd IDX files of the official release
(``train-images-idx3-ubyte.gz`` …).  IDX format (LeCun's MNIST page): a 4-byte
big-endian magic ``0x00 0x00 <type> <ndim>`` (type 0x08 = unsigned byte;
ndim 3 for images, 1 for labels), ``ndim`` big-endian uint32 sizes, then the
row-major data.  The decoded length must equal ``4 + 4*ndim + prod(sizes)``
exactly; anything else (bad gzip stream, wrong magic, short or long file) is a
:class:`DataError` naming the file.

Lookup order (first folder holding all four files wins): ``data_dir`` (and its
``fashion-mnist/``), ``$AKD_DATA_DIR`` (and its ``fashion-mnist/``), the cache
``$XDG_CACHE_HOME/akd/fashion-mnist`` (``~/.cache/akd/fashion-mnist``), then
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).
Uncompressed IDX files (same names without ``.gz``) are accepted too.  If none
has them and ``download`` is allowed, the files are fetched from the official
Zalando mirror into the cache and MD5-verified against the official checksums.
(Local files are not MD5-checked: Debian re-compresses them, so their ``.gz``
checksums differ; the IDX structure check catches truncation.)

Normalisation constants (train split, [0,1] units): mean 0.2860, std 0.3530.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ._registry import DATASETS
from .base import Dataset, cache_root, search_dirs, take_subset
from .base import download as _download

URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = (0.2860,)
STD = (0.3530,)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HOW_TO = (
    "get Fashion-MNIST with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
    "or put the four *-ubyte.gz files from " + URL + " in --data-dir or $AKD_DATA_DIR"
)

_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


def _refetch_hint(path: Path) -> str:
    if str(path).startswith(SYSTEM_DIR):
        return "reinstall it (`apt-get install --reinstall dataset-fashion-mnist`) or point --data-dir elsewhere"
    return "delete it and fetch it again (akd re-downloads missing files into its cache)"


def parse_idx(data: bytes, path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Decode the bytes of an uncompressed IDX file of unsigned bytes with ``ndim`` dimensions."""
    p = Path(path)
    bad = f"; {_refetch_hint(p)}"
    if len(data) < 4:
        raise DataError(f"{p} is truncated ({len(data)} bytes, no IDX header){bad}")
    magic = struct.unpack(">I", data[:4])[0]
    want = 0x0800 | ndim
    if magic != want:
        kind = _IDX_TYPES.get(data[2], f"type 0x{data[2]:02x}")
        raise DataError(
            f"{p} has IDX magic number 0x{magic:08x} ({kind}, {data[3]} dims), "
            f"expected 0x{want:08x} (unsigned byte, {ndim} dims){bad}"
        )
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataError(f"{p} is truncated ({len(data)} bytes, IDX header needs {head}){bad}")
    dims = struct.unpack(">" + "I" * ndim, data[4:head])
    expected = head + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "too long"
        raise DataError(f"{p} is {state}: {len(data)} bytes, the IDX header {dims} needs {expected}{bad}")
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(dims)


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, mtime_ns: int, size: int, ndim: int) -> np.ndarray:
    p = Path(path)
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as f:
                data = f.read()
        else:
            data = p.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{p} is truncated or corrupt ({e}); {_refetch_hint(p)}") from None
    except OSError as e:
        raise DataError(f"cannot read {p} ({e.strerror or e}); {_refetch_hint(p)}") from None
    arr = parse_idx(data, p, ndim)
    arr.flags.writeable = False
    return arr


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Read a (gzip'd) IDX file; decoded arrays are cached in memory by (path, mtime, size).

    The returned array is read-only and shared; copy before modifying.
    """
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise DataError(f"cannot read {p} ({e.strerror or e}); {HOW_TO}") from None
    return _read_idx_cached(str(p), st.st_mtime_ns, st.st_size, ndim)


def _file_in(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder / name[: -len(".gz")]):
        if cand.is_file():
            return cand
    return None


def find_files(data_dir: str | None = None) -> dict[str, Path] | None:
    """The first folder (lookup order above) with all four files, as ``{key: path}``; None if none."""
    for folder in search_dirs("fashion-mnist", data_dir, extra=(SYSTEM_DIR,)):
        found = {k: _file_in(folder, n) for k, n in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def fetch(dest: Path | None = None) -> dict[str, Path]:
    """Download the missing official files into ``dest`` (default: the cache), MD5-verified."""
    dest = Path(dest) if dest is not None else cache_root() / "fashion-mnist"
    out = {}
    for k, name in FILES.items():
        p = dest / name
        if not p.is_file():
            _download(URL + name, p, MD5[name], how_to=HOW_TO)
        out[k] = p
    return out


@DATASETS.register("fashion-mnist", aliases=("fashion_mnist", "fmnist"), doc="Fashion-MNIST, 1x28x28, 10 classes")
def fashion_mnist(
    data_dir: str | None = None,
    download: bool = True,
    train_n: int | None = None,
    test_n: int | None = None,
    subset_seed: int = 0,
) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017), 60 000 train / 10 000 test, 1×28×28, 10 classes.

    ``train_n``/``test_n`` keep a class-balanced subset: the first n of a fixed
    permutation seeded by ``subset_seed`` (see :func:`akd.data.base.balanced_order`).
    Normalisation mean 0.2860, std 0.3530; crop padding 4, horizontal flips.
    """
    files = find_files(data_dir)
    if files is None:
        if not download:
            where = ", ".join(str(p) for p in search_dirs("fashion-mnist", data_dir, extra=(SYSTEM_DIR,)))
            raise DataError(f"Fashion-MNIST not found (looked in {where}); {HOW_TO}")
        files = fetch()
    xtr = read_idx(files["train_images"], 3)
    ytr = read_idx(files["train_labels"], 1)
    xte = read_idx(files["test_images"], 3)
    yte = read_idx(files["test_labels"], 1)
    for xs, ys, kx, ky in ((xtr, ytr, "train_images", "train_labels"), (xte, yte, "test_images", "test_labels")):
        if len(xs) != len(ys):
            raise DataError(
                f"{files[kx]} has {len(xs)} images but {files[ky]} has {len(ys)} labels; {_refetch_hint(files[kx])}"
            )
        if len(ys) and int(ys.max()) >= 10:
            raise DataError(f"{files[ky]} has label {int(ys.max())}, Fashion-MNIST has 10 classes; {_refetch_hint(files[ky])}")

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.copy()).unsqueeze(1)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    tx, ty = take_subset(images(xtr), labels(ytr), train_n, seed=subset_seed, num_classes=10, what="train_n")
    vx, vy = take_subset(images(xte), labels(yte), test_n, seed=subset_seed, num_classes=10, what="test_n")
    return Dataset(
        name="fashion-mnist",
        train_x=tx,
        train_y=ty,
        test_x=vx,
        test_y=vy,
        num_classes=10,
        mean=MEAN,
        std=STD,
        pad=4,
        flip=True,
        classes=CLASSES,
        source=str(files["train_images"].parent),
    )
