"""Data: in-memory data sets (one file each) and a device-resident input pipeline.

* :data:`DATASETS` -- the ``dataset`` registry: ``fashion-mnist``, ``cifar10``,
  ``cifar100``, ``synthetic``, ``image-folder`` (alias ``imagenet``; streamed from files); build with :func:`load_dataset` (or
  ``DATASETS.build(spec)``), e.g. ``load_dataset("synthetic(n=512,classes=10)")``.
* :class:`Dataset` -- uint8 images + labels + normalisation constants; see
  :mod:`akd.data.base` for conventions; :func:`with_dev_split` holds out a
  stratified dev set from train.
* :class:`DeviceLoader` -- seeded, resumable batches on the device;
  :func:`random_crop_flip`, :func:`rand_augment`, :func:`normalize`.
* :class:`StreamLoader` -- the same interface for data streamed from files by worker
  processes (:mod:`akd.data.stream`); :func:`train_loader` picks the engine's loader.
"""

from __future__ import annotations

from typing import Any

from ..registry import Spec
from ._registry import DATASETS
from .base import Dataset, balanced_order, channel_stats, take_subset, with_dev_split
from .augment import CropFlipParams, apply_crop_flip, draw_crop_flip, random_crop_flip
from .randaugment import OPS as RAND_AUGMENT_OPS
from .randaugment import RandAugmentParams, apply_rand_augment, draw_rand_augment, rand_augment
from .pipeline import BatchInfo, DeviceLoader, derive_seed, normalize, train_loader
from .stream import LazyImages, StreamLoader
from . import fashion_mnist, cifar, synthetic, image_folder  # noqa: F401

from ..errors import ConfigError
from pathlib import Path


def load_dataset(spec: Spec, data_dir: str | None = None, dev: float = 0.0, seed: int = 0) -> Dataset:
    """Build the data set a spec names, optionally with a dev split.

    ``spec``: ``"fashion-mnist"``, ``"cifar100(train_n=5000)"``, ``{"name": "synthetic", "n": 256}``…
    ``data_dir`` is passed to data sets that read files (unless the spec sets
    ``data_dir`` itself).  ``dev`` in (0, 1) replaces the test set by a seeded
    (``seed``), class-stratified held-out fraction of train
    (:func:`with_dev_split`); ``dev=0`` keeps the official test set.
    """
    if isinstance(dev, bool) or not isinstance(dev, (int, float)) or not 0.0 <= float(dev) < 1.0:
        raise ConfigError(f"dev fraction {dev!r} is invalid; use 0 (official test set) or a number in (0, 1), e.g. 0.1")
    entry, params = DATASETS.resolve(spec)
    extra: dict[str, Any] = {}
    if data_dir is not None and "data_dir" in entry.params and params.get("data_dir") is None:
        extra["data_dir"] = str(data_dir)
    folder = data_dir if data_dir is not None else params.get("data_dir")
    if folder is not None and not Path(folder).expanduser().is_dir():  # a typo is not a reason to download
        what = "is not a folder" if Path(folder).expanduser().exists() else "does not exist"
        raise ConfigError(f"data folder '{folder}' {what}; give an existing folder (--data-dir) or leave it out to use the default lookup")
    ds = DATASETS.build(spec, **extra)
    if dev > 0:
        ds = with_dev_split(ds, float(dev), seed)
    return ds


__all__ = [
    "DATASETS", "Dataset", "load_dataset", "with_dev_split", "balanced_order", "take_subset", "channel_stats",
    "DeviceLoader", "BatchInfo", "derive_seed", "normalize", "train_loader", "StreamLoader", "LazyImages",
    "random_crop_flip", "draw_crop_flip", "apply_crop_flip", "CropFlipParams",
    "rand_augment", "draw_rand_augment", "apply_rand_augment", "RandAugmentParams", "RAND_AUGMENT_OPS",
]
