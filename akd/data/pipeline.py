"""A device-resident input pipeline: the whole uint8 data set lives on the device.

:class:`DeviceLoader` copies the uint8 images and labels to ``device`` once;
each batch is an index into them, augmented there (batched crop/flip) as uint8;
:meth:`DeviceLoader.to_float` normalises it.  No ``DataLoader``, worker processes or
per-sample Python.  Virtual views (RandAugment) are not the loader's: the engine draws
them from their own seed stream (:func:`akd.engine.loop.virtual_views`).

Determinism: the order of epoch ``e`` comes from a ``torch.Generator`` on the
data's device seeded with ``derive_seed(seed, e, "order")``; the crop/flip of
batch ``i`` of epoch ``e`` from one seeded with ``derive_seed(seed, e, i)``.
So a given ``(seed, epoch)`` always yields identical batches, any batch can be
regenerated on its own (resuming mid-epoch: ``raw_batches(e, start=i)``), and
nothing else the program draws (model init, dropout, the global RNG) can shift
the data stream.  Runs with the same seed see exactly the same views, which
puts methods compared on the same seed on an equal footing.  (Identical across
devices is not promised: CPU and CUDA generators differ.)
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterator, NamedTuple, Sequence

import torch

from ..errors import ConfigError
from .augment import CropFlipParams, random_crop_flip

__all__ = ["DeviceLoader", "BatchInfo", "normalize", "derive_seed", "train_loader"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from a tuple of ints/strings (BLAKE2b of their repr): stable across
    runs, processes and Python versions (unlike ``hash``)."""
    digest = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x/255 - mean) / std`` per channel, as float32 (``x`` uint8 ``[..., C, H, W]``).

    ``mean``/``std`` have one value per channel (or one for all), in [0, 1] units.
    """
    scale, shift = _norm_constants(x.device, tuple(float(v) for v in mean), tuple(float(v) for v in std))
    return x.to(torch.float32) * scale - shift


_NORM_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _norm_constants(dev: torch.device, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1/(255·std), mean/std) as [C,1,1] tensors on ``dev``, made once per device (a host->device copy
    per step would be a host synchronisation on CUDA)."""
    key = (str(dev), mean, std)
    if key not in _NORM_CACHE:
        m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        _NORM_CACHE[key] = ((1.0 / (255.0 * s)).to(dev), (m / s).to(dev))
    return _NORM_CACHE[key]


class BatchInfo(NamedTuple):
    """What produced a batch: ``index`` (positions in the data set, on the device),
    ``crop`` (crop/flip draws, None without augmentation)."""

    index: torch.Tensor
    crop: CropFlipParams | None


class DeviceLoader:
    """Batches of a uint8 image tensor held on ``device``.

    ``DeviceLoader(x, y, batch_size, device=..., shuffle=True, drop_last=False,
    augment=False, pad=4, flip=True, mean=..., std=..., seed=0)``

    * ``loader.raw_batches(e)`` yields the augmented uint8 batch and labels
      (and a :class:`BatchInfo` with ``with_info=True``) of epoch ``e``;
      ``loader.to_float(xb)`` normalises a batch (or a virtual view of it).
    * ``len(loader)`` is the number of batches per epoch.

    ``augment`` applies :func:`random_crop_flip` (``pad``, ``flip``).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
        augment: bool = False,
        pad: int = 4,
        flip: bool = True,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        seed: int = 0,
    ):
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ConfigError(f"DeviceLoader needs uint8 images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        if y.dim() != 1 or len(y) != len(x):
            raise ConfigError(f"DeviceLoader: {len(x)} images but labels of shape {tuple(y.shape)}")
        n = len(x)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size {batch_size!r} is invalid; use a positive integer <= {n} (the data set size)")
        if batch_size > n:
            raise ConfigError(f"batch size {batch_size} is larger than the data set ({n} samples); use a batch size <= {n}")
        if pad < 0:
            raise ConfigError(f"crop padding pad={pad} must be >= 0")
        c = x.shape[1]
        if len(tuple(mean)) not in (1, c) or len(tuple(std)) not in (1, c):
            raise ConfigError(f"mean/std need 1 or {c} values (one per channel), got {tuple(mean)}/{tuple(std)}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be > 0, got {tuple(std)}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.pad = int(pad)
        self.flip = bool(flip)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.seed = int(seed)

    # ------------------------------------------------------------------ sizes

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    # ------------------------------------------------------------------ randomness

    def _generator(self, *parts: object) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, *parts))

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (a permutation when shuffling, else ``0..N-1``)."""
        n = len(self.x)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        return torch.randperm(n, generator=self._generator(int(epoch), "order"), device=self.device)

    # ------------------------------------------------------------------ iteration

    def raw_batches(
        self, epoch: int, start: int = 0, *, with_info: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, BatchInfo]]:
        """Augmented uint8 batches ``(x [B,C,H,W], y [B])`` of ``epoch`` from batch ``start``.

        With ``with_info`` each item is ``(x, y, BatchInfo)``.
        """
        order = self.order(epoch)
        b = self.batch_size
        for i in range(int(start), len(self)):
            idx = order[i * b : (i + 1) * b]
            xb, yb = self.x[idx], self.y[idx]
            crop = None
            if self.augment:
                xb, crop = random_crop_flip(xb, self.pad, self.flip, self._generator(int(epoch), i), return_params=True)
            yield (xb, yb, BatchInfo(idx, crop)) if with_info else (xb, yb)

    def originals(self, index: torch.Tensor) -> torch.Tensor:
        """The stored (un-augmented) uint8 images of ``index`` (e.g. a batch's ``BatchInfo.index``)."""
        return self.x[index]

    def to_float(self, xb: torch.Tensor) -> torch.Tensor:
        """A uint8 batch (or a virtual view of it) normalised with this loader's mean/std, as float32."""
        return normalize(xb, self.mean, self.std)

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(n={len(self.x)}, batch_size={self.batch_size}, batches={len(self)}, device={self.device}, "
            f"shuffle={self.shuffle}, augment={self.augment}, seed={self.seed})"
        )



def train_loader(ds, batch_size: int, *, device: str | torch.device, seed: int, workers: int | None = None):
    """The engine's training loader for a data set: shuffled, augmented, last partial batch dropped.

    A data set that streams from files makes its own (``ds.train_loader(...)``, e.g.
    :class:`akd.data.stream.StreamLoader`, which decodes with ``workers`` processes); an in-memory one gets a
    :class:`DeviceLoader` over its tensors with its crop padding and flip setting (``workers`` is not used).
    Both have the same interface (``order``, ``len``, ``raw_batches``, ``originals``, ``to_float``).
    """
    own = getattr(ds, "train_loader", None)
    if own is not None:
        return own(batch_size, device=device, seed=seed, workers=workers)
    return DeviceLoader(ds.train_x, ds.train_y, batch_size, device=device, shuffle=True, drop_last=True, augment=True,
                        pad=ds.pad, flip=ds.flip, mean=ds.mean, std=ds.std, seed=seed)
