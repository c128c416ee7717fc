"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 32×32 colour images, "python version" files.

Format (https://www.cs.toronto.edu/~kriz/cifar.html): each batch file is a
pickled dict with keys ``b'data'`` (``N×3072`` uint8; row ``i`` holds image ``i``
channel-major -- the 1024 red values, then green, then blue, each 32×32
row-major, so pixel ``(c, h, w)`` is column ``1024*c + 32*h + w``) and the
labels: ``b'fine_labels'`` (CIFAR-100, 100 classes; also ``b'coarse_labels'``,
20 super-classes) or ``b'labels'`` (CIFAR-10).

* CIFAR-100: ``cifar-100-python/{train,test,meta}`` (50 000 / 10 000 images);
* CIFAR-10: ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``.

The pickles are read with a restricted unpickler that only builds numpy arrays
and plain containers (a pickle cannot run code), with ``encoding='latin1'``
(the official files were written by Python 2); ``str`` and ``bytes`` keys are
both accepted.  Lookup order for the folder: ``data_dir``, ``$AKD_DATA_DIR``,
the cache ``$XDG_CACHE_HOME/akd`` (``~/.cache/akd``), each either containing the
folder or being it.  If it is missing and ``download`` is allowed, the official
tarball is downloaded into the cache (MD5-verified, atomic), extracted safely
(members that are links, devices, absolute paths or escape the folder are
rejected) and removed.

Normalisation constants (train split, [0,1] units):
CIFAR-100 mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762);
CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ._registry import DATASETS
from .base import Dataset, cache_root, take_subset
from .base import download as _download


@dataclass(frozen=True)
class CifarSpec:
    name: str
    folder: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def how_to(self) -> str:
        return (
            f"download {self.url} (md5 {self.md5}) and extract it into --data-dir or $AKD_DATA_DIR "
            f"(giving {self.folder}/), or allow akd to download it (download=True, needs internet)"
        )


CIFAR100 = CifarSpec(
    name="cifar100",
    folder="cifar-100-python",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)

CIFAR10 = CifarSpec(
    name="cifar10",
    folder="cifar-10-batches-py",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)


# ----------------------------------------------------------------------------- safe pickles


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray as ma, numeric as nu  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma, numeric as nu  # type: ignore[no-redef]
    import _codecs

    out: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = ma._reconstruct
        out[(mod, "scalar")] = ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        if hasattr(nu, "_frombuffer"):
            out[(mod, "_frombuffer")] = nu._frombuffer
    return out


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays/dtypes (and plain containers) may be built."""

    allowed = _numpy_globals()

    def find_class(self, module: str, name: str):  # noqa: D401
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _hint(path: Path) -> str:  # noqa: ARG001 - one place to word the fix
    return "delete it and extract or download the data set again"


@functools.lru_cache(maxsize=16)
def _load_pickle_cached(path: str, mtime_ns: int, size: int) -> dict:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {p} ({e.strerror or e}); {_hint(p)}") from None
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, UnicodeDecodeError, zlib.error) as e:
        raise DataError(f"{p} is truncated or not a CIFAR pickle ({type(e).__name__}: {e}); {_hint(p)}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{p} is not a CIFAR batch (pickle holds {type(obj).__name__}, expected a dict); {_hint(p)}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def load_pickle(path: str | os.PathLike) -> dict:
    """Read one CIFAR pickle into a dict with ``str`` keys (cached by path, mtime, size)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise DataError(f"cannot read {p} ({e.strerror or e})") from None
    return _load_pickle_cached(str(p), st.st_mtime_ns, st.st_size)


def read_batch(path: str | os.PathLike, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file -> (uint8 ``[N,3,32,32]``, int64 ``[N]``)."""
    p = Path(path)
    d = load_pickle(p)
    if "data" not in d or label_key not in d:
        raise DataError(f"{p} lacks the key 'data' or '{label_key}' (has {sorted(map(str, d))}); {_hint(p)}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{p}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072); {_hint(p)}")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{p}: {len(data)} images but labels of shape {labels.shape}; {_hint(p)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{p}: labels span {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}; {_hint(p)}")
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


# ----------------------------------------------------------------------------- locating / fetching


def _roots(data_dir: str | None) -> list[Path]:
    roots = [Path(r).expanduser() for r in (data_dir, os.environ.get("AKD_DATA_DIR")) if r]
    roots.append(cache_root())
    return roots


def candidate_dirs(spec: CifarSpec, data_dir: str | None = None) -> list[Path]:
    out: list[Path] = []
    for r in _roots(data_dir):
        for c in (r / spec.folder, r):
            if c not in out:
                out.append(c)
    return out


def find_folder(spec: CifarSpec, data_dir: str | None = None) -> Path | None:
    """First candidate folder that holds every train and test batch file."""
    for c in candidate_dirs(spec, data_dir):
        if all((c / f).is_file() for f in spec.train_files + spec.test_files):
            return c
    return None


def safe_extract(tar_path: Path, dest: Path) -> None:
    """Extract a tar archive into ``dest``, rejecting links, devices and paths escaping ``dest``."""
    dest = dest.resolve()
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if os.path.isabs(m.name) or ".." in Path(m.name).parts or not (target == dest or dest in target.parents):
                    raise DataError(f"{tar_path} contains the unsafe path {m.name!r}; refusing to extract it")
                if not (m.isfile() or m.isdir()):
                    raise DataError(f"{tar_path} contains {m.name!r}, which is not a regular file or folder; refusing it")
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(dest, members=members, **kwargs)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{tar_path} is truncated or corrupt ({e}); delete it and download it again") from None


def fetch(spec: CifarSpec, root: Path | None = None) -> Path:
    """Download (MD5-verified) and safely extract ``spec`` into ``root`` (default: the cache)."""
    root = Path(root) if root is not None else cache_root()
    archive = root / Path(spec.url).name
    if not archive.is_file():
        _download(spec.url, archive, spec.md5, how_to=spec.how_to)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        safe_extract(archive, tmp)
        src = tmp / spec.folder
        if not src.is_dir():
            raise DataError(f"{archive} does not contain {spec.folder}/; delete it and download it again")
        final = root / spec.folder
        if not all((final / f).is_file() for f in spec.train_files + spec.test_files):
            if final.exists():  # an incomplete earlier copy in akd's own cache
                shutil.rmtree(final)
            os.replace(src, final)
        # else: another process finished extracting first; keep its copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink(missing_ok=True)
    return root / spec.folder


def load_cifar(
    spec: CifarSpec,
    data_dir: str | None,
    download: bool,
    train_n: int | None,
    test_n: int | None,
    subset_seed: int,
    label_key: str | None = None,
    num_classes: int | None = None,
    names_key: str | None = None,
) -> Dataset:
    folder = find_folder(spec, data_dir)
    if folder is None:
        if not download:
            looked = ", ".join(str(c) for c in candidate_dirs(spec, data_dir))
            raise DataError(f"{spec.name} not found (looked for {spec.folder}/ in {looked}); {spec.how_to}")
        folder = fetch(spec)
    key = label_key or spec.label_key
    k = num_classes or spec.num_classes

    def read(files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_batch(folder / f, key, k) for f in files]
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    xtr, ytr = read(spec.train_files)
    xte, yte = read(spec.test_files)
    classes = None
    meta = folder / spec.meta_file
    if meta.is_file():
        try:
            names = load_pickle(meta).get(names_key or spec.names_key)
            if names is not None and len(names) == k:
                classes = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
        except DataError:
            classes = None  # class names are cosmetic; a bad meta file does not stop training
    xtr, ytr = take_subset(xtr, ytr, train_n, seed=subset_seed, num_classes=k, what="train_n")
    xte, yte = take_subset(xte, yte, test_n, seed=subset_seed, num_classes=k, what="test_n")
    return Dataset(
        name=spec.name,
        train_x=xtr,
        train_y=ytr,
        test_x=xte,
        test_y=yte,
        num_classes=k,
        mean=spec.mean,
        std=spec.std,
        pad=4,
        flip=True,
        classes=classes,
        source=str(folder),
    )


@DATASETS.register("cifar100", aliases=("cifar-100",), doc="CIFAR-100, 3x32x32, 100 classes (or 20 coarse)")
def cifar100(
    data_dir: str | None = None,
    download: bool = True,
    train_n: int | None = None,
    test_n: int | None = None,
    subset_seed: int = 0,
    coarse: bool = False,
) -> Dataset:
    """CIFAR-100 (Krizhevsky 2009), 50 000 train / 10 000 test, 3×32×32, 100 fine classes.

    ``coarse=True`` uses the 20 super-class labels instead.  ``train_n``/``test_n``
    keep a class-balanced seeded subset (first n of :func:`akd.data.base.balanced_order`).
    Normalisation mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762).
    """
    if coarse:
        ds = load_cifar(CIFAR100, data_dir, download, train_n, test_n, subset_seed,
                        label_key="coarse_labels", num_classes=20, names_key="coarse_label_names")
        return replace(ds, name="cifar100-coarse")
    return load_cifar(CIFAR100, data_dir, download, train_n, test_n, subset_seed)


@DATASETS.register("cifar10", aliases=("cifar-10",), doc="CIFAR-10, 3x32x32, 10 classes")
def cifar10(
    data_dir: str | None = None,
    download: bool = True,
    train_n: int | None = None,
    test_n: int | None = None,
    subset_seed: int = 0,
) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009), 50 000 train / 10 000 test, 3×32×32, 10 classes.

    ``train_n``/``test_n`` keep a class-balanced seeded subset.
    Normalisation mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
    """
    return load_cifar(CIFAR10, data_dir, download, train_n, test_n, subset_seed)
