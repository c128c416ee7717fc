"""Exact teacher cache: the teacher's outputs for every standard-augmentation view of every image.

Standard CIFAR augmentation (zero-padded random crop with padding p, optional horizontal flip) has a
finite set of views per image: (2p+1)² offsets × 2 flips = 162 for p = 4.  For objectives that read
only teacher ``logits``/``pooled`` of the real (crop/flip) view (``kd``, ``rkd``, ``cc``, ``pkt``), the
teacher forward of every training step is a lookup into a table computed once:

    table[src][i, v] = teacher(normalize(crop_flip(x_i, view v)))[src],   v = (dy·(2p+1) + dx)·F + flip

built at a large batch size, kept on the training device and reused across students, seeds and methods
(in-process, keyed by teacher weights, data and view geometry; a new process builds it again).  It is
*exact* up to the batch-size dependence of floating-point kernels: the teacher is in eval mode, so each
image's output does not depend on its batch companions; the tests measure the difference to the online
outputs (fp32 on CPU: ~1e-6 or 0).  Values are stored in the dtype the online teacher produces (fp32 on
CPU, bf16 under CUDA autocast), so no precision is lost relative to online.  Virtual (RandAugment)
views are not finite and stay online: objectives with virtual views (VRM) do not use the cache, nor do
those reading ``map``.
"""

from __future__ import annotations

import hashlib

import torch

from ..data.augment import CropFlipParams, apply_crop_flip
from ..data.pipeline import normalize
from .device import autocast

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
    def key(teacher: torch.nn.Module, x_u8: torch.Tensor, pad: int, flip: bool, mean, std, sources, amp: str) -> str:
        h = hashlib.sha1()
        for k, v in teacher.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        h.update(repr((tuple(x_u8.shape), float(x_u8[:64].float().sum()), pad, flip, tuple(mean), tuple(std), sorted(sources), amp)).encode())
        return h.hexdigest()[:20]

    @classmethod
    @torch.inference_mode()
    def build(cls, teacher: torch.nn.Module, x_u8: torch.Tensor, *, pad: int, flip: bool, mean, std, sources,
              device: torch.device, amp: str = "auto", batch_size: int = 1024, channels_last: bool = False,
              log=None) -> "TeacherViewCache":
        """Run the teacher once over every view of every image (or reuse the in-process copy)."""
        key = cls.key(teacher, x_u8, pad, flip, mean, std, sources, amp)
        if key in _MEMORY:
            return _MEMORY[key]
        teacher.eval()
        x_u8 = x_u8.to(device)
        n = x_u8.shape[0]
        side, flips = 2 * pad + 1, (2 if flip else 1)
        tables: dict[str, torch.Tensor] = {}
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
            if log:
                log(f"teacher cache: {100 * (dy + 1) / side:.0f}% of {side * side * flips} views")
        cache = cls(tables, pad, flip)
        _MEMORY[key] = cache
        return cache


def clear() -> None:
    _MEMORY.clear()
