"""``image-folder(root=PATH, size=224)``: a folder of JPEG/PNG images in the ImageNet layout (alias ``imagenet``).

Layout (torchvision's ``ImageFolder`` convention)::

    root/train/<class>/**/*.jpg|jpeg|png      (any case; other files are ignored)
    root/val/<class>/**/*.jpg|jpeg|png

Classes are the sub-folders of ``train/`` sorted by name, labelled ``0..K-1`` in that order; files are listed in
``os.walk`` order with sorted folder and file names (as torchvision).  ``val/`` labels use train's class list (a val
class folder unknown to train is refused; a class missing from val is allowed).  Paths in specs may be quoted or
not: ``image-folder(root=/data/my images,size=224)``, ``image-folder(root="/data/imagenet")``.

Two modes (``mode``):

* ``stream`` -- the ImageNet recipe: batches are decoded by worker processes (:class:`~akd.data.stream.StreamLoader`;
  the run config's ``workers`` key / ``--workers``), training views are torchvision's RandomResizedCrop(size) +
  horizontal flip, evaluation views Resize(round(size·8/7)) + CenterCrop(size) (:mod:`.folder_transforms`); only the
  file list is held in memory.
* ``memory`` -- data that fits: every image is decoded once to ``size x size`` (shorter side to ``size``, centre
  crop; train and val alike) into an in-memory :class:`~akd.data.Dataset`, trained with the in-memory recipe
  (zero-padded random crop, ``pad = size // 8``, + flip on the device, like CIFAR).
* ``auto`` (default) -- ``memory`` when the decoded train + val images (``N · 3 · size²`` bytes) take at most
  ``memory_gb`` GiB, else ``stream``.  The recipes differ, so the chosen mode is part of the data set's ``source``;
  set ``mode`` explicitly to compare runs across data sizes.

Normalisation: ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (torchvision's constants, which
its published weights expect), applied on the device.

Bad folders (documented choice: refuse, never skip -- a skipped class would shift every later label, a skipped image
would change batch composition between runs): a missing root, ``train/`` or ``val/``, no class folders, a class
folder without images, or a val class unknown to train raise one-line :class:`~akd.errors.DataError`; an image that
cannot be decoded raises a DataError naming the file when it is first read (at load in ``memory`` mode, at its
first batch in ``stream`` mode).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import DataError
from ..registry import require
from ._registry import DATASETS
from .base import Dataset
from .folder_transforms import resolve_decoder
from .stream import ImageFiles, LazyImages, StreamLoader, default_workers

__all__ = ["ImageFolderStream", "image_folder", "scan_split", "IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _images_under(folder: Path) -> list[str]:
    """Image files below ``folder`` in torchvision's order: ``sorted(os.walk)``, file names sorted."""
    out = []
    for here, _, names in sorted(os.walk(folder, followlinks=True)):
        out += [os.path.join(here, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)
                and not n.startswith(".")]
    return out


def scan_split(split_dir: Path, classes: list[str] | None, decoder: str) -> tuple[ImageFiles, list[str]]:
    """The files and labels of ``split_dir`` (a ``train/`` or ``val/`` folder) and the class list used."""
    if not split_dir.is_dir():
        raise DataError(f"image folder: {split_dir} is not a folder; expected the layout <root>/train/<class>/*.jpg "
                        f"and <root>/val/<class>/*.jpg")
    found = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not found:
        raise DataError(f"image folder: {split_dir} has no class folders; expected {split_dir}/<class>/*.jpg")
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"image folder: {split_dir} has class folders that train/ lacks: {', '.join(unknown[:5])}"
                        f"{' ...' if len(unknown) > 5 else ''}; give val/ the class folders of train/")
    index = {c: k for k, c in enumerate(classes)}
    paths: list[str] = []
    labels: list[int] = []
    empty = []
    for c in found:
        files = _images_under(split_dir / c)
        if not files:
            empty.append(c)
        paths += files
        labels += [index[c]] * len(files)
    if empty:
        raise DataError(f"image folder: {len(empty)} class folder(s) in {split_dir} hold no JPEG/PNG image "
                        f"({', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}); add images or remove the folder(s)")
    arr = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_)
    return ImageFiles(arr, torch.tensor(labels, dtype=torch.int64), decoder), classes


@dataclass(eq=False)
class ImageFolderStream:
    """A streamed image folder: the file lists of train and val plus what the engine reads from a data set.

    ``train_x``/``test_x`` are :class:`~akd.data.stream.LazyImages` (evaluation views, decoded when sliced);
    :meth:`train_loader` makes the engine's :class:`~akd.data.stream.StreamLoader`.  ``workers`` (the run's
    ``workers`` setting, given to :meth:`train_loader`) is used for training and evaluation alike.
    """

    name: str
    train: ImageFiles
    val: ImageFiles
    size: int
    classes: tuple[str, ...]
    source: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    eval_name: str = "test"
    pad: int = 0
    flip: bool = True
    workers: int = field(default_factory=default_workers)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    @property
    def train_x(self) -> LazyImages:
        return LazyImages(self.train, self.size, workers=self.workers)

    @property
    def train_y(self) -> torch.Tensor:
        return self.train.labels

    @property
    def test_x(self) -> LazyImages:
        return LazyImages(self.val, self.size, workers=self.workers)

    @property
    def test_y(self) -> torch.Tensor:
        return self.val.labels

    eval_x, eval_y = test_x, test_y

    def train_loader(self, batch_size: int, *, device: str | torch.device, seed: int, workers: int | None = None,
                     **kwargs: object) -> StreamLoader:
        """The engine's training loader: ImageNet training views streamed by ``workers`` processes (default:
        :func:`~akd.data.stream.default_workers`); ``kwargs`` go to :class:`StreamLoader`."""
        if workers is not None:
            self.workers = workers
        return StreamLoader(self.train, self.size, batch_size, device=device, seed=seed, mean=self.mean, std=self.std,
                            workers=self.workers, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"ImageFolderStream({self.name!r}, train={len(self.train)}, {self.eval_name}={len(self.val)}, "
                f"in_shape={self.in_shape}, num_classes={self.num_classes})")


def _in_memory(name: str, train: ImageFiles, val: ImageFiles, size: int, classes: list[str], source: str) -> Dataset:
    """Decode every image once to ``size x size`` (shorter side to ``size``, centre crop) into a :class:`Dataset`."""
    workers = default_workers()
    return Dataset(
        name=name,
        train_x=LazyImages(train, size, resize=size, workers=workers)[:],
        train_y=train.labels,
        test_x=LazyImages(val, size, resize=size, workers=workers)[:],
        test_y=val.labels,
        num_classes=len(classes), mean=IMAGENET_MEAN, std=IMAGENET_STD, pad=max(1, size // 8), flip=True,
        classes=tuple(classes), source=source,
    )


@DATASETS.register("image-folder", aliases=("imagenet", "image_folder"),
                   doc="JPEG/PNG folders root/{train,val}/<class>/* (ImageNet layout); streamed or in memory")
def image_folder(
    root: str,
    size: int = 224,
    mode: Literal["auto", "memory", "stream"] = "auto",
    memory_gb: float = 2.0,
    decoder: str = "pil",
) -> Dataset | ImageFolderStream:
    """Images in ``root/train/<class>/`` and ``root/val/<class>/`` at ``size x size``; see the module docstring.

    ``mode``: ``stream`` (ImageNet recipe, worker processes), ``memory`` (decoded once, in-memory recipe) or
    ``auto`` (memory when the decoded images take <= ``memory_gb`` GiB).  ``decoder``: ``pil``, ``simplejpeg`` or
    ``auto`` (see :mod:`akd.data.folder_transforms`).
    """
    require(size >= 8, f"image-folder: size={size} must be >= 8")
    require(memory_gb > 0, f"image-folder: memory_gb={memory_gb} must be > 0")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"image folder: root {root!r} is not a folder; expected <root>/train/<class>/*.jpg and <root>/val/<class>/*.jpg")
    dec = resolve_decoder(decoder)
    train, classes = scan_split(base / "train", None, dec)
    val, _ = scan_split(base / "val", classes, dec)
    nbytes = (len(train) + len(val)) * 3 * size * size
    chosen = mode if mode != "auto" else ("memory" if nbytes <= memory_gb * 2**30 else "stream")
    source = f"image-folder(root={str(base)!r},size={size},mode={chosen},decoder={dec})"
    if chosen == "memory":
        return _in_memory("image-folder", train, val, size, classes, source)
    return ImageFolderStream("image-folder", train, val, size, tuple(classes), source)
