"""The in-memory :class:`Dataset`, subsets, the dev split and file helpers.

Conventions
-----------
* Images are ``torch.uint8`` tensors ``[N, C, H, W]`` on the CPU (channel-major,
  row-major pixels), labels are ``torch.int64`` ``[N]`` in ``0..num_classes-1``.
  Loaders hand these tensors out *shared* (no copy per use): treat them as
  read-only.
* ``mean``/``std`` are per-channel statistics in ``[0, 1]`` pixel units
  (pixel / 255); :func:`akd.data.normalize` maps ``x -> (x/255 - mean) / std``.
* ``pad``/``flip`` describe the standard augmentation recipe of the data set
  (``RandomCrop(H, padding=pad)`` + ``RandomHorizontalFlip``).
* ``eval_name`` says what the held-out tensors are: ``'test'`` (the official
  test split) or ``'dev'`` (a held-out part of train made by
  :func:`with_dev_split`, so that tuning never looks at the test set).

Where files are looked for (:func:`search_dirs`): the ``data_dir`` argument
(``--data-dir``), ``$AKD_DATA_DIR``, then the user cache
``$XDG_CACHE_HOME/akd`` (default ``~/.cache/akd``), each also with the data
set's own sub-folder.  Downloads go to the cache, written atomically (temporary
file + rename) and MD5-verified (:func:`download`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from ..paths import cache_root  # downloads honour AKD_CACHE_DIR like the teacher cache
from ..progress import Stage
from ..registry import require

__all__ = [
    "Dataset", "with_dev_split", "balanced_order", "take_subset", "channel_stats",
    "cache_root", "search_dirs", "download", "md5sum",
]


@dataclass(eq=False)
class Dataset:
    """A whole image-classification data set held in memory.

    Attributes: ``name``; ``train_x``/``test_x`` uint8 ``[N, C, H, W]`` (CPU);
    ``train_y``/``test_y`` int64 ``[N]``; ``num_classes``; ``mean``/``std`` per
    channel in [0, 1] pixel units; ``pad`` (random-crop zero padding);
    ``flip`` (horizontal flips allowed); ``eval_name`` ('test' or 'dev');
    ``classes`` (class names, if known); ``source`` (where it was read from).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 4
    flip: bool = True
    eval_name: str = "test"
    classes: tuple[str, ...] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(f"data set '{self.name}': {split}_x must be uint8 [N,C,H,W], got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise DataError(
                    f"data set '{self.name}': {split}_y must be int64 [{len(x)}], got {y.dtype} {tuple(y.shape)}"
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataError(
                f"data set '{self.name}': train images {tuple(self.train_x.shape[1:])} "
                f"and {self.eval_name} images {tuple(self.test_x.shape[1:])} differ in shape"
            )
        c = self.train_x.shape[1]
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(self.mean) != c or len(self.std) != c:
            raise DataError(f"data set '{self.name}': mean/std need {c} values (one per channel), got {self.mean}/{self.std}")
        if self.eval_name not in ("test", "dev"):
            raise DataError(f"data set '{self.name}': eval_name must be 'test' or 'dev', got {self.eval_name!r}")

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def eval_x(self) -> torch.Tensor:
        """Alias of ``test_x`` (the test or dev images, see ``eval_name``)."""
        return self.test_x

    @property
    def eval_y(self) -> torch.Tensor:
        return self.test_y

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_y)}, {self.eval_name}={len(self.test_y)}, "
            f"in_shape={self.in_shape}, num_classes={self.num_classes})"
        )


# ----------------------------------------------------------------------------- subsets


def _rank_within_class(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``r[i]`` = number of earlier positions ``j < i`` with ``y[j] == y[i]``."""
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(y)
    rank[order] = torch.arange(len(y)) - starts[y[order]]
    return rank


def balanced_order(y: torch.Tensor, seed: int = 0, num_classes: int | None = None) -> torch.Tensor:
    """A fixed seeded ordering of ``0..N-1`` that interleaves the classes.

    A seeded random permutation is taken, then re-ordered round-robin: first
    every class's first element (in permutation order), then every class's
    second, etc.  Any prefix of length ``n`` therefore holds ``n/K`` samples of
    each class (±1, while the classes last) and prefixes are nested.
    """
    y = y.long().cpu()
    k = int(num_classes if num_classes is not None else (int(y.max()) + 1 if len(y) else 1))
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(y), generator=g)
    yp = y[perm]
    rank = _rank_within_class(yp, k)
    return perm[torch.argsort(rank * k + yp, stable=True)]


def take_subset(
    x: torch.Tensor, y: torch.Tensor, n: int | None, *, seed: int = 0, num_classes: int | None = None, what: str = "train_n"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` of :func:`balanced_order` (kept in original order); all if ``n`` is None."""
    if n is None:
        return x, y
    require(0 < n <= len(y), f"{what}={n} is out of range; choose 1..{len(y)} (or leave it unset for all)")
    if n == len(y):
        return x, y
    idx = balanced_order(y, seed, num_classes)[:n].sort().values
    return x[idx], y[idx]


def with_dev_split(ds: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """Hold out a seeded, class-stratified ``fraction`` of *train* as the eval set.

    Per class ``c`` with ``n_c`` training samples, ``k_c = min(floor(fraction*n_c + 1/2), n_c - 1)``
    samples (the first ``k_c`` of class ``c`` in a permutation seeded by ``seed``)
    become the dev set; the rest stays train.  The returned Dataset has
    ``test_x/test_y`` = dev, ``eval_name='dev'``, the same normalisation
    constants, and indices in original order.  The official test set is
    dropped, so tuning can never look at it.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"dev fraction {fraction!r} is invalid; use a number in (0, 1), e.g. 0.1 (0 = no dev split)")
    if not isinstance(ds.train_x, torch.Tensor):
        raise ConfigError(f"a dev split needs an in-memory data set; {ds!r} streams from files: "
                          f"evaluate on its val/ folder (dev=0) or load it with mode=memory")
    y = ds.train_y
    k = ds.num_classes
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(y), generator=g)
    yp = y[perm]
    rank = _rank_within_class(yp, k)
    counts = torch.bincount(y, minlength=k)
    take = torch.minimum(torch.floor(counts.double() * float(fraction) + 0.5).long(), (counts - 1).clamp(min=0))
    is_dev = rank < take[yp]
    n_dev = int(is_dev.sum())
    if n_dev == 0:
        raise ConfigError(
            f"dev fraction {fraction} of {len(y)} training samples gives an empty dev set; use a larger fraction"
        )
    dev_idx = perm[is_dev].sort().values
    tr_idx = perm[~is_dev].sort().values
    return replace(
        ds,
        train_x=ds.train_x[tr_idx],
        train_y=ds.train_y[tr_idx],
        test_x=ds.train_x[dev_idx],
        test_y=ds.train_y[dev_idx],
        eval_name="dev",
    )


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (population) of uint8 images in [0, 1] units.

    Computed from a 256-bin histogram per channel, so it needs no float copy
    of the data.
    """
    means, stds = [], []
    v = torch.arange(256, dtype=torch.float64) / 255.0
    for c in range(x.shape[1]):
        h = torch.bincount(x[:, c].reshape(-1).cpu(), minlength=256).double()
        n = h.sum()
        m = (h * v).sum() / n
        var = (h * (v - m) ** 2).sum() / n
        means.append(float(m))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


# ----------------------------------------------------------------------------- files


def search_dirs(sub: str, data_dir: str | None = None, extra: tuple[str, ...] = ()) -> list[Path]:
    """Folders to look in, in order: ``data_dir``, ``data_dir/sub``, ``$AKD_DATA_DIR``,
    ``$AKD_DATA_DIR/sub``, ``cache_root()/sub``, then ``extra``."""
    out: list[Path] = []
    for root in (data_dir, os.environ.get("AKD_DATA_DIR")):
        if root:
            r = Path(root).expanduser()
            out += [r, r / sub]
    out.append(cache_root() / sub)
    out += [Path(e) for e in extra]
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str, *, how_to: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically and verify its MD5.

    The bytes go to a temporary file next to ``dest`` (renamed into place only
    after the checksum matched), so an interrupted download never leaves a
    truncated file under the final name.  Network failure or a checksum
    mismatch raise :class:`DataError` ending with ``how_to``.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {dest.parent} to download into ({e.strerror}); {how_to}") from None
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r, \
                Stage(f"akd: downloading {url} -> {dest}", int(r.headers.get("Content-Length") or 0), unit="MiB",
                      scale=2**20) as bar:
            while chunk := r.read(1 << 20):
                f.write(chunk)
                h.update(chunk)
                bar.advance(len(chunk))
        got = h.hexdigest()
        if got != md5:
            raise DataError(f"download of {url} failed its checksum (md5 {got}, expected {md5}); retry, or {how_to}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise DataError(f"could not download {url} ({reason}); {how_to}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
