"""Exact teacher cache: the teacher's outputs for every standard-augmentation view of every image.

Standard CIFAR augmentation (zero-padded random crop with padding p, optional horizontal flip) has a
finite set of views per image: (2p+1)² offsets × 2 flips = 162 for p = 4.  For objectives that read
only teacher ``logits``/``pooled`` of the real (crop/flip) view (``kd``, ``rkd``, ``cc``, ``pkt``), the
teacher forward of every training step is a lookup into a table computed once:

    table[src][i, v] = teacher(normalize(crop_flip(x_i, view v)))[src],   v = (dy·(2p+1) + dx)·F + flip

built at a large batch size, kept on the training device and reused across students, seeds and methods:
in-process, and across processes through a file ``<akd cache>/teacher-views/<key>.pt`` (the key hashes the
teacher's weights, every training image, the view geometry, normalisation, sources, precision and device
type; an unreadable or mismatching file is rebuilt, a file that cannot be written only costs the reuse).  It is
*exact* up to the batch-size dependence of floating-point kernels: the teacher is in eval mode, so each
image's output does not depend on its batch companions; the tests measure the difference to the online
outputs (fp32 on CPU: ~1e-6 or 0).  Values are stored in the dtype the online teacher produces (fp32 on
CPU, bf16 under CUDA autocast), so no precision is lost relative to online.  Virtual (RandAugment)
views are not finite and stay online: objectives with virtual views (VRM) do not use the cache, nor do
those reading ``map``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch

from ..data.augment import CropFlipParams, apply_crop_flip
from ..data.pipeline import normalize
from ..errors import AkdError, ConfigError
from ..progress import Stage
from .checkpoint import atomic_write_with, load_checkpoint, weights_digest
from .device import autocast

FORMAT = 1  # version of the stored file's layout

CACHEABLE = {"logits", "pooled"}
_MEMORY: dict[str, "TeacherViewCache"] = {}


def eligible(objective) -> bool:
    """True when every teacher read of ``objective`` is a cacheable representation of the real view."""
    return objective.needs_teacher and objective.views == 0 and objective.teacher_sources() <= CACHEABLE


class TeacherViewCache:
    def __init__(self, tables: dict[str, torch.Tensor], pad: int, flip: bool):
        self.tables, self.pad, self.flip = tables, pad, flip
        self.side = 2 * pad + 1
        self.flips = 2 if flip else 1

    @property
    def num_views(self) -> int:
        return self.side * self.side * self.flips

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tables.values())

    def view_id(self, params: CropFlipParams) -> torch.Tensor:
        f = params.flip.long() if self.flips == 2 else torch.zeros_like(params.dy)
        return (params.dy * self.side + params.dx) * self.flips + f

    def lookup(self, index: torch.Tensor, params: CropFlipParams) -> dict[str, torch.Tensor]:
        """Teacher outputs for images ``index`` seen through crops/flips ``params`` (no host sync)."""
        v = self.view_id(params)
        return {k: t[index, v] for k, t in self.tables.items()}

    @staticmethod
    def key(teacher: torch.nn.Module, x_u8: torch.Tensor, pad: int, flip: bool, mean, std, sources, amp: str,
            device_type: str = "cpu") -> str:
        """What the tables depend on: the teacher's weights, every training image, the view geometry,
        normalisation, the representations stored, the precision setting and the device type (bf16 on CUDA)."""
        h = hashlib.sha1(weights_digest(teacher.state_dict()).encode())
        h.update(x_u8.detach().cpu().contiguous().reshape(-1).numpy().tobytes())
        h.update(repr((FORMAT, tuple(x_u8.shape), pad, flip, tuple(mean), tuple(std), sorted(sources), amp, device_type)).encode())
        return h.hexdigest()[:20]

    @classmethod
    @torch.inference_mode()
    def build(cls, teacher: torch.nn.Module, x_u8: torch.Tensor, *, pad: int, flip: bool, mean, std, sources,
              device: torch.device, amp: str = "auto", batch_size: int = 1024, channels_last: bool = False,
              store: str | Path | None = None, save: bool = True,
              log: Callable[[str], None] | None = None, progress: bool | None = None) -> "TeacherViewCache":
        """Run the teacher once over every view of every image, or reuse the in-process copy or the file
        ``<store>/<key>.pt`` (written after a build when ``store`` is given and ``save``: rank 0 only under DDP).
        ``progress``: show the build's progress (None: as the caller's scope says, :func:`akd.progress.display`)."""
        if not isinstance(x_u8, torch.Tensor):  # e.g. an image folder streamed from files (random-resized crops)
            raise ConfigError("--teacher-cache needs an in-memory data set (its views are the pad-crop/flip grid); "
                              "this one streams from files: drop --teacher-cache")
        log = log or (lambda m: None)
        key = cls.key(teacher, x_u8, pad, flip, mean, std, sources, amp, device.type)
        if key in _MEMORY:
            return _MEMORY[key]
        path = Path(store) / f"{key}.pt" if store is not None else None
        if path is not None and path.exists():
            cache = cls._load(path, key, x_u8.shape[0], pad, flip, sources, device, log)
            if cache is not None:
                _MEMORY[key] = cache
                return cache
        cache = cls._compute(teacher, x_u8, pad=pad, flip=flip, mean=mean, std=std, sources=sources, device=device, amp=amp,
                             batch_size=batch_size, channels_last=channels_last, progress=progress)
        _MEMORY[key] = cache
        if path is not None and save:
            cache._save(path, key, log)
        return cache

    def _save(self, path: Path, key: str, log: Callable[[str], None]) -> None:
        state = {"akd_teacher_views": FORMAT, "key": key, "pad": self.pad, "flip": self.flip,
                 "tables": {k: v.cpu() for k, v in self.tables.items()}}
        try:
            atomic_write_with(path, lambda f: torch.save(state, f))
        except OSError as e:  # the tables are in memory and correct; only the reuse by later processes is lost
            log(f"teacher cache: could not store {path} ({e.strerror or e}); training goes on without storing it")
            return
        log(f"teacher cache: stored {self.nbytes() / 2**20:.0f} MiB at {path} (reused by later runs; delete it to free space)")

    @classmethod
    def _load(cls, path: Path, key: str, n: int, pad: int, flip: bool, sources, device: torch.device,
              log: Callable[[str], None]) -> "TeacherViewCache | None":
        try:
            st = load_checkpoint(path, map_location=device)
        except AkdError as e:
            log(f"teacher cache: ignoring {path}: {e}; rebuilding it")
            return None
        views = (2 * pad + 1) ** 2 * (2 if flip else 1)
        tables = st.get("tables") if isinstance(st.get("tables"), dict) else {}
        ok = (st.get("akd_teacher_views") == FORMAT and st.get("key") == key and st.get("pad") == pad and st.get("flip") == flip
              and set(tables) == set(sources) and all(t.shape[:2] == (n, views) for t in tables.values()))
        if not ok:
            log(f"teacher cache: ignoring {path}: it does not hold the tables of this teacher and data; rebuilding it")
            return None
        log(f"teacher cache: reusing {path}")
        return cls(tables, pad, flip)

    @classmethod
    def _compute(cls, teacher: torch.nn.Module, x_u8: torch.Tensor, *, pad: int, flip: bool, mean, std, sources,
                 device: torch.device, amp: str, batch_size: int, channels_last: bool,
                 progress: bool | None = None) -> "TeacherViewCache":
        teacher.eval()
        x_u8 = x_u8.to(device)
        n = x_u8.shape[0]
        side, flips = 2 * pad + 1, (2 if flip else 1)
        tables: dict[str, torch.Tensor] = {}
        with Stage(f"teacher cache: building {side * side * flips} views x {n} images", side * side * flips * n,
                   unit="forwards", enabled=progress) as bar:
            for dy in range(side):
                for dx in range(side):
                    for f in range(flips):
                        v = (dy * side + dx) * flips + f
                        for i in range(0, n, batch_size):
                            xb = x_u8[i:i + batch_size]
                            b = xb.shape[0]
                            p = CropFlipParams(torch.full((b,), dy, device=device), torch.full((b,), dx, device=device),
                                               torch.full((b,), bool(f), device=device))
                            x = normalize(apply_crop_flip(xb, p, pad), mean, std)
                            if channels_last:
                                x = x.contiguous(memory_format=torch.channels_last)
                            with autocast(device, amp):
                                out = teacher(x)
                            for s in sources:
                                o = out[s]
                                if s not in tables:
                                    tables[s] = torch.empty((n, side * side * flips) + tuple(o.shape[1:]), dtype=o.dtype, device=device)
                                tables[s][i:i + b, v] = o
                            bar.advance(b)
        return cls(tables, pad, flip)


def clear() -> None:
    _MEMORY.clear()


def stored(store: str | Path) -> tuple[int, int]:
    """(number of files, bytes) of the stored tables in ``store``."""
    files = sorted(Path(store).glob("*.pt")) if Path(store).is_dir() else []
    return len(files), sum(f.stat().st_size for f in files)
