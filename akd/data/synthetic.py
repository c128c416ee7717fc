"""A procedurally generated, learnable image data set (no files, no network).

Every class ``k`` gets a smooth random *prototype* ``P_k`` (``C×S×S`` in [0, 1]):

    g_k(u, v) = Σ_j a_kj cos(2π f_kj (u cos θ_kj + v sin θ_kj) + φ_kj) / Σ_j a_kj     (3 gratings)
    b_k(u, v) = exp(-((u - cx_k)² + (v - cy_k)²) / (2 σ_k²))                             (a blob)
    base_k    = minmax(0.5 g_k + b_k)  ∈ [0, 1]
    P_k[c]    = o_kc + (1 - o_kc) · s_kc · base_k                                       (class colour)

with ``(u, v)`` the pixel centres in [0, 1], ``θ ~ U(0, π)``, ``f ~ U(1, 3)``
cycles per image, ``φ ~ U(0, 2π)``, ``a ~ U(0.5, 1)``, blob centre ``~ U(0.25, 0.75)²``,
``σ ~ U(0.08, 0.18)``, gain ``s ~ U(0.5, 1)``, offset ``o ~ U(0, 0.3)``.

Sample ``i`` of class ``y_i`` is ``P_{y_i}`` shifted by an integer ``(dy, dx) ~ U{-shift..shift}²``
(edge pixels replicated), mirrored left-right with probability 1/2 (so horizontal
flips preserve the class, as for natural images), contrast-jittered around its mean by ``U(0.7, 1.3)``,
brightness-shifted by ``U(-0.1, 0.1)``, plus Gaussian noise of std ``noise``;
then clipped to [0, 1] and rounded to uint8.  Labels are balanced
(``i mod classes``, shuffled).

Everything is drawn from one ``torch.Generator`` seeded by ``seed`` in a fixed
order (prototypes, then train, then test), vectorised over samples in fixed
chunks, so a seed always gives the same data and the train set does not depend
on ``test_n``.  ``mean``/``std`` are computed from the train images.
"""

from __future__ import annotations

import math

import torch

from ..registry import require
from ._registry import DATASETS
from .base import Dataset, channel_stats

_CHUNK = 4096
_GRATINGS = 3


def _prototypes(g: torch.Generator, classes: int, channels: int, size: int) -> torch.Tensor:
    u = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    vv, uu = torch.meshgrid(u, u, indexing="ij")  # vv: row coordinate, uu: column coordinate
    shape = (classes, _GRATINGS, 1, 1)
    theta = (torch.rand(classes, _GRATINGS, generator=g) * math.pi).view(shape)
    freq = (1.0 + 2.0 * torch.rand(classes, _GRATINGS, generator=g)).view(shape)
    phase = (2 * math.pi * torch.rand(classes, _GRATINGS, generator=g)).view(shape)
    amp = (0.5 + 0.5 * torch.rand(classes, _GRATINGS, generator=g)).view(shape)
    proj = uu * torch.cos(theta) + vv * torch.sin(theta)
    grat = (amp * torch.cos(2 * math.pi * freq * proj + phase)).sum(1) / amp.sum(1)
    cu = (0.25 + 0.5 * torch.rand(classes, generator=g)).view(-1, 1, 1)
    cv = (0.25 + 0.5 * torch.rand(classes, generator=g)).view(-1, 1, 1)
    sigma = (0.08 + 0.10 * torch.rand(classes, generator=g)).view(-1, 1, 1)
    blob = torch.exp(-((uu - cu) ** 2 + (vv - cv) ** 2) / (2 * sigma**2))
    base = 0.5 * grat + blob
    lo = base.amin(dim=(1, 2), keepdim=True)
    hi = base.amax(dim=(1, 2), keepdim=True)
    base = (base - lo) / (hi - lo).clamp_min(1e-6)
    gain = (0.5 + 0.5 * torch.rand(classes, channels, generator=g)).view(classes, channels, 1, 1)
    offset = (0.3 * torch.rand(classes, channels, generator=g)).view(classes, channels, 1, 1)
    return offset + (1 - offset) * gain * base[:, None]


def _samples(g: torch.Generator, proto: torch.Tensor, n: int, noise: float, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    classes, c, s, _ = proto.shape
    y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    dy = torch.randint(-shift, shift + 1, (n,), generator=g)
    dx = torch.randint(-shift, shift + 1, (n,), generator=g)
    contrast = 0.7 + 0.6 * torch.rand(n, generator=g)
    bright = 0.2 * torch.rand(n, generator=g) - 0.1
    mirror = torch.rand(n, generator=g) < 0.5
    flat = proto.reshape(classes, c, s * s)
    ar = torch.arange(s)
    x = torch.empty(n, c, s, s, dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(n, start + _CHUNK))
        b = sl.stop - sl.start
        rows = (ar[None] - dy[sl, None]).clamp(0, s - 1)
        cols = (torch.where(mirror[sl, None], s - 1 - ar[None], ar[None]) - dx[sl, None]).clamp(0, s - 1)
        idx = (rows[:, :, None] * s + cols[:, None, :]).reshape(b, 1, s * s).expand(b, c, s * s)
        img = flat[y[sl]].gather(2, idx).reshape(b, c, s, s)
        a = contrast[sl].view(-1, 1, 1, 1)
        m = img.mean(dim=(1, 2, 3), keepdim=True)
        img.mul_(a).add_(m * (1 - a) + bright[sl].view(-1, 1, 1, 1))  # m + a (img - m) + bright
        if noise > 0:
            img.add_(torch.randn(img.shape, generator=g), alpha=noise)
        x[sl] = img.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return x, y


@DATASETS.register("synthetic", aliases=("synth",), doc="procedural class-conditional images (no files; tests, demos)")
def synthetic(
    n: int = 512,
    test_n: int | None = None,
    classes: int = 10,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
    noise: float = 0.1,
    shift: int | None = None,
) -> Dataset:
    """Procedural class-conditional images: per-class grating+blob prototypes, jittered.

    ``n`` train and ``test_n`` (default ``n // 4``) test images of ``channels×size×size``;
    per-sample shift up to ``shift`` pixels (default ``size // 8``), contrast and
    brightness jitter and Gaussian noise of std ``noise`` (in [0,1] units).
    Deterministic by ``seed``.  Crop padding ``max(1, size // 8)``, flips allowed.
    See the module docstring for the formulas.
    """
    require(n > 0, f"synthetic: n={n} must be > 0")
    require(classes >= 2, f"synthetic: classes={classes} must be >= 2")
    require(size >= 8, f"synthetic: size={size} must be >= 8")
    require(channels in (1, 3), f"synthetic: channels={channels} must be 1 or 3")
    require(noise >= 0, f"synthetic: noise={noise} must be >= 0")
    test_n = max(1, n // 4) if test_n is None else test_n
    require(test_n > 0, f"synthetic: test_n={test_n} must be > 0")
    shift = size // 8 if shift is None else shift
    require(0 <= shift < size, f"synthetic: shift={shift} must be in 0..{size - 1}")
    g = torch.Generator().manual_seed(int(seed))
    proto = _prototypes(g, classes, channels, size)
    xtr, ytr = _samples(g, proto, n, noise, shift)
    xte, yte = _samples(g, proto, test_n, noise, shift)
    mean, std = channel_stats(xtr)
    std = tuple(max(v, 1e-3) for v in std)
    return Dataset(
        name="synthetic",
        train_x=xtr,
        train_y=ytr,
        test_x=xte,
        test_y=yte,
        num_classes=classes,
        mean=mean,
        std=std,
        pad=max(1, size // 8),
        flip=True,
        classes=tuple(f"class{k}" for k in range(classes)),
        source=f"synthetic(n={n},test_n={test_n},classes={classes},size={size},channels={channels},seed={seed},noise={noise},shift={shift})",
    )
