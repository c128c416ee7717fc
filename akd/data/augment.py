"""Batched random crop + horizontal flip on uint8 image tensors (on any device).

Semantics are torchvision's ``RandomCrop(H, padding=pad)`` (constant zero
padding) followed by ``RandomHorizontalFlip(p=0.5)``, drawn independently per
sample:

    dy, dx ~ U{0, …, 2·pad}        (offset of the crop window in the padded image)
    f      ~ Bernoulli(1/2)         (only when ``flip``)
    out[c, h, w] = xpad[c, h + dy, w' + dx],   w' = W-1-w if f else w,
    xpad[c, i, j] = x[c, i - pad, j - pad] inside the image, 0 outside.

No padded copy is made: the source index is computed per output pixel and
out-of-image reads are masked to zero; everything is one ``gather``.  The draws
are returned as :class:`CropFlipParams` (``return_params=True``) and can be
re-applied with :func:`apply_crop_flip`, e.g. to cache teacher outputs per view.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["CropFlipParams", "draw_crop_flip", "apply_crop_flip", "random_crop_flip"]


class CropFlipParams(NamedTuple):
    """Per-sample draws: ``dy``, ``dx`` int64 in ``0..2*pad`` and ``flip`` bool, each ``[B]``."""

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor


def draw_crop_flip(batch: int, pad: int, flip: bool, generator: torch.Generator) -> CropFlipParams:
    """Draw ``dy``, ``dx`` (then ``flip``) for ``batch`` samples on the generator's device."""
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    dev = generator.device
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=dev)
    if flip:
        f = torch.rand(batch, generator=generator, device=dev) < 0.5
    else:
        f = torch.zeros(batch, dtype=torch.bool, device=dev)
    return CropFlipParams(dy, dx, f)


def apply_crop_flip(x: torch.Tensor, params: CropFlipParams, pad: int) -> torch.Tensor:
    """Apply given per-sample crop offsets and flips to ``x`` ``[B, C, H, W]`` (any dtype)."""
    if x.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    dev = x.device
    dy, dx, f = (t.to(dev) for t in params)
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = ar_h[None] + dy[:, None] - pad  # [B, H]  source row
    cols = torch.where(f[:, None], (w - 1) - ar_w[None], ar_w[None]) + dx[:, None] - pad  # [B, W]
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # [B, H, W]
    idx = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
    out = x.reshape(b, c, h * w).gather(2, idx.reshape(b, 1, h * w).expand(b, c, h * w)).reshape(b, c, h, w)
    return out.masked_fill_(~valid[:, None], 0)


def random_crop_flip(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator, *, return_params: bool = False
) -> torch.Tensor | tuple[torch.Tensor, CropFlipParams]:
    """Random zero-padded crop (+ horizontal flip) of every image in ``x`` ``[B, C, H, W]``.

    Draws come from ``generator`` (on its own device; moved to ``x``'s device).
    Returns the augmented batch (same dtype/shape), and the
    :class:`CropFlipParams` when ``return_params``.
    """
    params = draw_crop_flip(x.shape[0], pad, flip, generator)
    out = apply_crop_flip(x, params, pad) if (pad > 0 or flip) else x.clone()
    return (out, params) if return_params else out
