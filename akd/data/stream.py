"""Streaming input pipeline for data sets that do not fit in memory: worker processes decode and augment, the
device normalises.

:class:`StreamLoader` has :class:`~akd.data.DeviceLoader`'s interface (``order``, ``len``, ``raw_batches(epoch,
start, with_info)``, ``originals``, ``to_float``), so the engine trains from either unchanged.  Batches are decoded by
``workers`` processes of a ``torch.utils.data.DataLoader`` (one job = one batch; ``prefetch`` jobs in flight per
worker, pinned host memory when the device is CUDA) and copied to the device as uint8; normalisation and virtual
views (RandAugment) happen there, as for in-memory data.

Determinism and resumption: the order of epoch ``e`` is ``randperm(N)`` from a CPU generator seeded with
``derive_seed(seed, e, "order")`` (identical on every device and world size); the view of sample ``i`` in epoch
``e`` is drawn from ``derive_seed(seed, e, i)`` (:mod:`akd.data.folder_transforms`).  So ``raw_batches(e, start=s)``
yields exactly the batches ``s, s+1, ...`` of a pass from 0, and two runs with the same data seed see the same
images, crops and flips whatever their method.

Distributed: under an initialised ``torch.distributed`` process group of ``W`` ranks, rank ``r`` decodes only rows
``[r·b, (r+1)·b)`` (``b = B / W``) of each global batch ``B`` -- its shard of the same global order, for any ``W``
dividing ``B``.  It yields the global batch's layout (the engine's runtime keeps rows ``[r·b, (r+1)·b)``, as for
in-memory data): its own rows decoded, the other ranks' rows zero placeholders that are never decoded, and the
global labels and indices.  Virtual views are drawn per row from the global batch's stream, so a rank's rows and
their views are exactly those of a 1-process run.

Errors: an image that cannot be decoded stops training with a one-line :class:`~akd.errors.DataError` naming the
file (a skipped image would change the batch composition and break equal footing; see :mod:`.image_folder`).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError, DataError
from .folder_transforms import decode, eval_resize, eval_view, to_tensor, train_view
from .pipeline import BatchInfo, derive_seed, normalize

__all__ = ["ImageFiles", "LazyImages", "StreamLoader", "default_workers"]


def default_workers() -> int:
    """Worker processes per training process when none is given: ``min(8, cpus / local processes - 1)``, >= 0."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(0, min(8, (os.cpu_count() or 1) // max(1, local) - 1))


@dataclass(frozen=True)
class ImageFiles:
    """The image files of one split: ``paths`` (a numpy bytes array, so forked workers share it without copying
    reference counts), ``labels`` int64 ``[N]`` and the ``decoder`` name."""

    paths: np.ndarray
    labels: torch.Tensor
    decoder: str

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        return os.fsdecode(self.paths[i])


# ----------------------------------------------------------------------------------------------- worker jobs


class _TrainJobs(torch.utils.data.Dataset):
    """Job ``(epoch, indices)`` -> ``(uint8 [b, 3, S, S], error)``: each sample's training view (or, without
    ``augment``, its evaluation view), drawn from ``derive_seed(seed, epoch, index)``."""

    def __init__(self, files: ImageFiles, size: int, seed: int, augment: bool):
        self.files, self.size, self.seed, self.augment = files, size, seed, augment

    def view(self, epoch: int, i: int) -> torch.Tensor:
        img = decode(self.files.path(i), self.files.decoder)
        if self.augment:
            return to_tensor(train_view(img, self.size, random.Random(derive_seed(self.seed, epoch, i))))
        return to_tensor(eval_view(img, self.size))

    def __getitem__(self, job: tuple[int, Sequence[int]]) -> tuple[torch.Tensor, str]:
        epoch, indices = job
        try:
            return _stack([self.view(epoch, i) for i in indices], self.size), ""
        except DataError as e:  # reported by the main process as one line (not the DataLoader's traceback dump)
            return torch.empty(0, dtype=torch.uint8), str(e)

    def __len__(self) -> int:  # pragma: no cover - jobs come from the sampler
        return 0


class _EvalJobs(torch.utils.data.Dataset):
    """Job ``(lo, hi)`` -> ``(uint8 [hi-lo, 3, S, S], error)``: evaluation views (shorter side ``resize``, centre crop)."""

    def __init__(self, files: ImageFiles, size: int, resize: int):
        self.files, self.size, self.resize = files, size, resize

    def __getitem__(self, job: tuple[int, int]) -> tuple[torch.Tensor, str]:
        lo, hi = job
        try:
            views = [to_tensor(eval_view(decode(self.files.path(i), self.files.decoder), self.size, self.resize))
                     for i in range(lo, hi)]
            return _stack(views, self.size), ""
        except DataError as e:
            return torch.empty(0, dtype=torch.uint8), str(e)

    def __len__(self) -> int:  # pragma: no cover
        return 0


def _stack(views: list[torch.Tensor], size: int) -> torch.Tensor:
    return torch.stack(views) if views else torch.empty(0, 3, size, size, dtype=torch.uint8)


def _run_jobs(dataset: torch.utils.data.Dataset, jobs: list, workers: int, pin: bool, prefetch: int) -> Iterator[torch.Tensor]:
    """The jobs' results in order, computed by ``workers`` processes (in this process when 0)."""
    loader = DataLoader(dataset, batch_size=None, sampler=jobs, num_workers=workers, pin_memory=pin,
                        prefetch_factor=prefetch if workers > 0 else None)
    for x, err in loader:
        if err:
            raise DataError(err)
        yield x


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers={workers!r} is invalid; use 0 (decode in the training process) or a positive integer")
    return workers


# ----------------------------------------------------------------------------------------------- evaluation images


class LazyImages:
    """A split's evaluation views, uint8 ``[N, 3, S, S]``, decoded when sliced.

    Stands where the engine expects a data set's ``test_x`` (and ``train_x``, for its size): ``shape``, ``len``,
    ``.to(device)`` (a view bound to ``device``) and ``x[lo:hi]`` -> a uint8 tensor on that device, decoded by
    ``workers`` processes (jobs of ``chunk`` images).  Nothing is held in memory between slices.
    """

    dtype = torch.uint8

    def __init__(self, files: ImageFiles, size: int, *, resize: int | None = None, workers: int = 0,
                 device: str | torch.device = "cpu", chunk: int = 64, lo: int = 0, hi: int | None = None):
        self.files, self.size = files, size
        self.resize = eval_resize(size) if resize is None else resize
        self.workers, self.device, self.chunk = _check_workers(workers), torch.device(device), chunk
        self.lo, self.hi = lo, len(files) if hi is None else hi

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.hi - self.lo, 3, self.size, self.size))

    def __len__(self) -> int:
        return self.hi - self.lo

    def to(self, device: str | torch.device, *args: object, **kwargs: object) -> "LazyImages":
        return LazyImages(self.files, self.size, resize=self.resize, workers=self.workers, device=device,
                          chunk=self.chunk, lo=self.lo, hi=self.hi)

    def __getitem__(self, key: slice) -> torch.Tensor:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"LazyImages supports contiguous slices x[lo:hi] only, got {key!r}")
        lo, hi, _ = key.indices(len(self))
        lo, hi = self.lo + lo, self.lo + max(lo, hi)
        jobs = [(a, min(hi, a + self.chunk)) for a in range(lo, hi, self.chunk)]
        workers = min(self.workers, len(jobs))
        parts = list(_run_jobs(_EvalJobs(self.files, self.size, self.resize), jobs, workers,
                               self.device.type == "cuda", 2))
        out = torch.cat(parts) if parts else torch.empty(0, 3, self.size, self.size, dtype=torch.uint8)
        return out.to(self.device, non_blocking=True)

    def __repr__(self) -> str:
        return f"LazyImages(n={len(self)}, size={self.size}, resize={self.resize}, workers={self.workers}, device={self.device})"


# ----------------------------------------------------------------------------------------------- training batches


class StreamLoader:
    """Seeded, resumable batches of image files, decoded by worker processes, uint8 on ``device``.

    ``StreamLoader(files, size, batch_size, device=..., seed=0, mean=..., std=..., workers=..., prefetch=2,
    shuffle=True, drop_last=True, augment=True, rank=None, world_size=None)``; ``rank``/``world_size`` default to
    the initialised ``torch.distributed`` group (else 0/1).  See the module docstring for the semantics.
    """

    def __init__(self, files: ImageFiles, size: int, batch_size: int, *, device: str | torch.device = "cpu",
                 seed: int = 0, mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,), workers: int = 0,
                 prefetch: int = 2, shuffle: bool = True, drop_last: bool = True, augment: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        n = len(files)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
            raise ConfigError(f"batch size {batch_size!r} is invalid; use a positive integer <= {n} (the data set size)")
        if prefetch < 1:
            raise ConfigError(f"prefetch={prefetch} must be >= 1 (batches in flight per worker)")
        if rank is None or world_size is None:
            dist = torch.distributed
            on = dist.is_available() and dist.is_initialized()
            rank, world_size = (dist.get_rank(), dist.get_world_size()) if on else (0, 1)
        if batch_size % world_size:
            raise ConfigError(f"batch size {batch_size} does not split over {world_size} processes; use a multiple of {world_size}")
        self.files, self.size, self.batch_size = files, int(size), batch_size
        self.device = torch.device(device)
        self.seed, self.workers, self.prefetch = int(seed), _check_workers(workers), int(prefetch)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.shuffle, self.drop_last, self.augment = shuffle, drop_last, augment
        self.rank, self.world_size = int(rank), int(world_size)

    # ------------------------------------------------------------------ sizes and order

    @property
    def num_samples(self) -> int:
        return len(self.files)

    def __len__(self) -> int:
        n, b = len(self.files), self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def order(self, epoch: int) -> torch.Tensor:
        """The global sample order of ``epoch`` (CPU; a permutation when shuffling, else ``0..N-1``)."""
        n = len(self.files)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator().manual_seed(derive_seed(self.seed, int(epoch), "order"))
        return torch.randperm(n, generator=g)

    def local_rows(self, batch: int) -> slice:
        """The rows of a global batch of ``batch`` images that this rank decodes (and the engine keeps)."""
        b = batch // self.world_size
        return slice(self.rank * b, (self.rank + 1) * b)

    # ------------------------------------------------------------------ iteration

    def raw_batches(self, epoch: int, start: int = 0, *, with_info: bool = False) -> Iterator[tuple]:
        """uint8 batches ``(x [B,3,S,S], y [B])`` on the device for batches ``start..`` of ``epoch`` (with a
        :class:`~akd.data.BatchInfo` of the global indices when ``with_info``); see the module docstring for the
        rows of other ranks."""
        order, b = self.order(epoch), self.batch_size
        steps = range(int(start), len(self))
        batches = [order[i * b:(i + 1) * b] for i in steps]
        jobs = [(int(epoch), idx[self.local_rows(len(idx))].tolist()) for idx in batches]
        decoded = _run_jobs(_TrainJobs(self.files, self.size, self.seed, self.augment), jobs,
                            min(self.workers, len(jobs)), self.device.type == "cuda", self.prefetch)
        for idx, x in zip(batches, decoded):
            x = x.to(self.device, non_blocking=True)
            if self.world_size > 1:
                full = torch.zeros((len(idx), *x.shape[1:]), dtype=torch.uint8, device=self.device)
                full[self.local_rows(len(idx))] = x
                x = full
            y = self.files.labels[idx].to(self.device)
            yield (x, y, BatchInfo(idx.to(self.device), None)) if with_info else (x, y)

    def originals(self, index: torch.Tensor) -> torch.Tensor:
        """The un-augmented images of a global batch's ``index``: evaluation views (shorter side round(size·8/7),
        centre crop), decoded here; under several ranks only this rank's rows (the others zero, as in
        :meth:`raw_batches`)."""
        rows = self.local_rows(len(index))
        mine = LazyImages(self.files, self.size)
        views = [mine[int(i):int(i) + 1] for i in index[rows].tolist()]
        out = torch.zeros((len(index), 3, self.size, self.size), dtype=torch.uint8)
        if views:
            out[rows] = torch.cat(views)
        return out.to(self.device)

    def to_float(self, xb: torch.Tensor) -> torch.Tensor:
        """A uint8 batch (or a virtual view of it) normalised with this loader's mean/std, as float32."""
        return normalize(xb, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"StreamLoader(n={len(self.files)}, size={self.size}, batch_size={self.batch_size}, batches={len(self)}, "
                f"device={self.device}, workers={self.workers}, rank={self.rank}/{self.world_size}, seed={self.seed})")
