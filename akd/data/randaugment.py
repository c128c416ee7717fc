"""Batched RandAugment (Cubuk et al. 2020) on uint8 image tensors, on any device.

Per sample and per slot ``k = 1..num_ops`` one op is drawn uniformly from
:data:`OPS` and applied with the fixed magnitude bin ``magnitude`` of
``num_bins``; ops marked *signed* get a random sign (probability 1/2), exactly as
``torchvision.transforms.RandAugment`` does.  Magnitude tables (torchvision's
``_augmentation_space``; ``H``, ``W`` the image size):

==============  ============================================  ======
op              value at bin m (linspace over ``num_bins``)    signed
==============  ============================================  ======
identity        --                                             no
brightness      0 .. 0.9            factor 1 + v               yes
color           0 .. 0.9            factor 1 + v               yes
contrast        0 .. 0.9            factor 1 + v               yes
sharpness       0 .. 0.9            factor 1 + v               yes
posterize       bits = 8 - round(m / ((num_bins-1)/4))          no
solarize        threshold 255 .. 0                              no
autocontrast    --                                             no
rotate          0 .. 30 degrees                                yes
shear_x/y       0 .. 0.3   (shear angle atan(v))                yes
translate_x/y   0 .. 150/331 · W (resp. H) pixels, int(v)       yes
==============  ============================================  ======

Formulas, for a uint8 image ``x`` (torchvision's tensor kernels; ``blend(a, b, r) =
trunc(clamp(r·a + (1-r)·b, 0, 255))`` with truncation as in torchvision's ``_blend``):

* brightness: ``blend(x, 0, 1+v)``
* color: ``blend(x, gray(x), 1+v)``, ``gray = trunc(0.2989 R + 0.587 G + 0.114 B)``;
  identity on 1-channel images (as torchvision's ``adjust_saturation``)
* contrast: ``blend(x, mean(gray(x)), 1+v)`` (mean over the image; 1 channel: mean of x)
* sharpness: ``blend(x, s, 1+v)``, ``s`` = ``x`` with its interior replaced by
  ``round(x * [[1,1,1],[1,5,1],[1,1,1]] / 13)`` (border pixels kept); identity if H or W <= 2
* posterize: ``x & (0xFF << (8-bits))``
* solarize: ``255 - x`` where ``x >= threshold``, else ``x``
* autocontrast: per channel ``trunc(clamp((x - min) · 255 / (max - min), 0, 255))``
  (unchanged where ``max == min``)
* geometric ops: the inverse affine matrix of torchvision's
  ``_get_inverse_affine_matrix`` (rotate: angle ``-v`` about the image centre, i.e.
  counter-clockwise for ``v > 0``; shear_x/shear_y: shear ``degrees(atan(v))``
  about the top-left corner ``center=[0, 0]``; translate: ``int(v)`` pixels,
  positive = right/down), applied through one batched ``affine_grid``-style grid
  (pixel-centre coordinates, ``align_corners=False``) and ``grid_sample`` with
  nearest neighbour and zero fill.

All samples of a slot are processed at once: every op present in the pool is
computed for the whole batch and ``torch.where`` with per-sample masks keeps each
sample's own op; the geometric ops share one ``grid_sample`` with per-sample
matrices (identity for the others, which is exact under nearest sampling).

Deviations from torchvision: ``Equalize`` is not in the pool (13 ops instead of
14); the random draws are batched (a different random stream than torchvision's
per-image ``torch.randint`` calls, same distribution); float results can differ
from torchvision's by float rounding (batched means/convolutions) before
truncation, i.e. at most by 1 grey level in rare pixels.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence, overload

import torch
import torch.nn.functional as F

from ..errors import ConfigError, unknown

__all__ = ["OPS", "GEOMETRIC_OPS", "RandAugmentParams", "op_values", "draw_rand_augment", "apply_rand_augment", "rand_augment"]

OPS: tuple[str, ...] = (
    "identity", "brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast",
    "rotate", "shear_x", "shear_y", "translate_x", "translate_y",
)
GEOMETRIC_OPS = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})


class RandAugmentParams(NamedTuple):
    """Per-sample draws: ``ops`` int64 ``[B, num_ops]`` indexing ``op_names``; ``magnitude``
    float32 ``[B, num_ops]`` (signed value of the op's table; bits for posterize,
    threshold for solarize, 0 for identity/autocontrast)."""

    ops: torch.Tensor
    magnitude: torch.Tensor
    op_names: tuple[str, ...]


_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _op_tables(names, magnitude, num_bins, height, width, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-op magnitude values and sign flags as device tensors, built once per configuration/device."""
    key = (tuple(names), magnitude, num_bins, height, width, str(dev))
    if key not in _TABLES:
        table = op_values(magnitude, num_bins, height, width)
        _TABLES[key] = (torch.tensor([table[n][0] for n in names], dtype=torch.float32).to(dev),
                        torch.tensor([table[n][1] for n in names], dtype=torch.bool).to(dev))
    return _TABLES[key]


def op_values(magnitude: int, num_bins: int, height: int, width: int) -> dict[str, tuple[float, bool]]:
    """``{op: (value at bin magnitude, signed)}`` -- torchvision's RandAugment table."""
    lin = lambda lo, hi: float(torch.linspace(lo, hi, num_bins)[magnitude])  # noqa: E731
    bits = int((8 - (torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int())[magnitude])
    return {
        "identity": (0.0, False),
        "brightness": (lin(0.0, 0.9), True),
        "color": (lin(0.0, 0.9), True),
        "contrast": (lin(0.0, 0.9), True),
        "sharpness": (lin(0.0, 0.9), True),
        "posterize": (float(bits), False),
        "solarize": (lin(255.0, 0.0), False),
        "autocontrast": (0.0, False),
        "rotate": (lin(0.0, 30.0), True),
        "shear_x": (lin(0.0, 0.3), True),
        "shear_y": (lin(0.0, 0.3), True),
        "translate_x": (lin(0.0, 150.0 / 331.0 * width), True),
        "translate_y": (lin(0.0, 150.0 / 331.0 * height), True),
    }


def _check(num_ops: int, magnitude: int, num_bins: int, ops: Sequence[str] | None) -> tuple[str, ...]:
    if num_bins < 2:
        raise ConfigError(f"rand_augment: num_bins={num_bins} must be >= 2")
    if not 0 <= magnitude < num_bins:
        raise ConfigError(f"rand_augment: magnitude={magnitude} is out of range; use 0..{num_bins - 1} (num_bins={num_bins})")
    if num_ops < 0:
        raise ConfigError(f"rand_augment: num_ops={num_ops} must be >= 0")
    names = tuple(dict.fromkeys(OPS if ops is None else ops))  # de-duplicated, order kept
    if not names:
        raise ConfigError(f"rand_augment: empty op pool; choose from {', '.join(OPS)}")
    for n in names:
        if n not in OPS:
            raise unknown("RandAugment op", n, OPS)
    return names


def draw_rand_augment(
    batch: int,
    generator: torch.Generator,
    *,
    num_ops: int = 2,
    magnitude: int = 9,
    num_bins: int = 31,
    ops: Sequence[str] | None = None,
    height: int = 32,
    width: int = 32,
) -> RandAugmentParams:
    """Draw the per-sample ops and signed magnitudes (on the generator's device)."""
    names = _check(num_ops, magnitude, num_bins, ops)
    dev = generator.device
    value, signed = _op_tables(names, magnitude, num_bins, height, width, dev)
    op = torch.randint(0, len(names), (batch, num_ops), generator=generator, device=dev)
    neg = torch.randint(0, 2, (batch, num_ops), generator=generator, device=dev).bool() & signed[op]
    mag = torch.where(neg, -value[op], value[op])
    return RandAugmentParams(op, mag, names)


# ----------------------------------------------------------------------------- kernels


def _trunc_u8(v: torch.Tensor) -> torch.Tensor:
    return v.clamp(0, 255).to(torch.uint8)  # .to truncates toward zero, like torchvision


def _blend(xf: torch.Tensor, other: torch.Tensor | None, m: torch.Tensor) -> torch.Tensor:
    """``trunc(clamp((1+m)·x + (-m)·other))`` (``1 - (1+m) == -m`` exactly in torchvision's double math)."""
    ratio = (1.0 + m.double()).float()
    out = ratio * xf
    if other is not None:
        out = out + (-m) * other
    return _trunc_u8(out)


def _gray(xf: torch.Tensor) -> torch.Tensor:
    r, g, b = xf[:, 0:1], xf[:, 1:2], xf[:, 2:3]
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8).float()


def _sharpen_degenerate(x: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = torch.ones(3, 3, dtype=torch.float32, device=x.device)
    k[1, 1] = 5.0
    k = (k / k.sum()).expand(c, 1, 3, 3)
    blurred = torch.round(F.conv2d(xf, k, groups=c))
    out = xf.clone()
    out[..., 1:-1, 1:-1] = blurred
    return out


def _autocontrast(x: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True).float()
    hi = x.amax(dim=(-2, -1), keepdim=True).float()
    scale = 255.0 / (hi - lo)
    flat = ~torch.isfinite(scale)
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    scale = torch.where(flat, torch.ones_like(scale), scale)
    return _trunc_u8((xf - lo) * scale)


def _affine_theta(names: tuple[str, ...], op: torch.Tensor, mag: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-sample inverse affine matrices ``[B, 2, 3]`` (torchvision's ``_get_inverse_affine_matrix``)."""
    m = mag.double()
    zero = torch.zeros_like(m)

    def is_(name: str) -> torch.Tensor:
        return op == names.index(name) if name in names else torch.zeros_like(op, dtype=torch.bool)

    corner = is_("shear_x") | is_("shear_y")  # RandAugment shears about center=[0, 0] (top-left)
    angle = torch.where(is_("rotate"), -m, zero)  # F.rotate passes -angle
    shx = torch.where(is_("shear_x"), torch.rad2deg(torch.atan(m)), zero)
    shy = torch.where(is_("shear_y"), torch.rad2deg(torch.atan(m)), zero)
    tx = torch.where(is_("translate_x"), torch.trunc(m), zero)
    ty = torch.where(is_("translate_y"), torch.trunc(m), zero)
    cx = torch.where(corner, torch.full_like(m, -w * 0.5), zero)
    cy = torch.where(corner, torch.full_like(m, -h * 0.5), zero)
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shx), torch.deg2rad(shy)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=-1).view(-1, 2, 3).float()


def _warp(xf: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour, zero-fill warp: output pixel centre ``p`` (relative to the image
    centre) samples the input at ``theta @ [p, 1]`` (torchvision's ``_gen_affine_grid``)."""
    bsz, _, h, w = xf.shape
    dev = xf.device
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, w, device=dev)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, h, device=dev)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=dev)], dim=-1)
    rescaled = torch.stack([theta[:, 0, :] / (0.5 * w), theta[:, 1, :] / (0.5 * h)], dim=2)  # θᵀ / [w/2, h/2]
    grid = base.reshape(1, h * w, 3).expand(bsz, h * w, 3).bmm(rescaled).view(bsz, h, w, 2)
    return F.grid_sample(xf, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _apply_slot(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    bsz, c, h, w = x.shape
    xf = x.float()
    m = mag.view(bsz, 1, 1, 1).float()
    out = x
    present = set(names)

    def put(name: str, result: torch.Tensor) -> None:
        nonlocal out
        out = torch.where((op == names.index(name)).view(bsz, 1, 1, 1), result, out)

    if "brightness" in present:
        put("brightness", _blend(xf, None, m))
    if "color" in present and c == 3:
        put("color", _blend(xf, _gray(xf), m))
    if "contrast" in present:
        ref = _gray(xf) if c == 3 else xf
        put("contrast", _blend(xf, ref.mean(dim=(-3, -2, -1), keepdim=True), m))
    if "sharpness" in present and h > 2 and w > 2:
        put("sharpness", _blend(xf, _sharpen_degenerate(x, xf), m))
    if "posterize" in present:
        bits = m.round().long().clamp(0, 8)
        mask = ((255 << (8 - bits)) & 255).to(torch.uint8)
        put("posterize", x & mask)
    if "solarize" in present:
        put("solarize", torch.where(xf >= m, 255 - x, x))
    if "autocontrast" in present:
        put("autocontrast", _autocontrast(x, xf))
    geo = [n for n in names if n in GEOMETRIC_OPS]
    if geo:
        theta = _affine_theta(names, op, mag, h, w)
        warped = _warp(xf, theta).to(torch.uint8)
        is_geo = torch.zeros_like(op, dtype=torch.bool)
        for n in geo:
            is_geo |= op == names.index(n)
        out = torch.where(is_geo.view(bsz, 1, 1, 1), warped, out)
    return out


def apply_rand_augment(x: torch.Tensor, params: RandAugmentParams) -> torch.Tensor:
    """Apply given draws to ``x`` uint8 ``[B, C, H, W]`` (C in 1, 3); slots in order."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"rand_augment expects uint8 [B, C, H, W], got {x.dtype} {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"rand_augment supports 1 or 3 channels, got {x.shape[1]}")
    op = params.ops.to(x.device)
    mag = params.magnitude.to(x.device)
    if x.shape[0] == 0:
        return x.clone()
    out = x
    for k in range(op.shape[1]):
        out = _apply_slot(out, op[:, k], mag[:, k], params.op_names)
    return out if out is not x else x.clone()


@overload
def rand_augment(x: torch.Tensor, generator: torch.Generator, num_ops: int = ..., magnitude: int = ...,
                 num_bins: int = ..., *, ops: Sequence[str] | None = ..., return_params: Literal[False] = ...) -> torch.Tensor: ...
@overload
def rand_augment(x: torch.Tensor, generator: torch.Generator, num_ops: int = ..., magnitude: int = ...,
                 num_bins: int = ..., *, ops: Sequence[str] | None = ...,
                 return_params: Literal[True]) -> tuple[torch.Tensor, RandAugmentParams]: ...
def rand_augment(
    x: torch.Tensor,
    generator: torch.Generator,
    num_ops: int = 2,
    magnitude: int = 9,
    num_bins: int = 31,
    *,
    ops: Sequence[str] | None = None,
    return_params: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, RandAugmentParams]:
    """RandAugment a uint8 batch ``[B, C, H, W]``: ``num_ops`` random ops per sample.

    ``ops`` restricts the pool (default: all of :data:`OPS`).  Draws come from
    ``generator`` (on its device).  Returns the batch, plus the
    :class:`RandAugmentParams` when ``return_params``.
    """
    params = draw_rand_augment(
        x.shape[0], generator, num_ops=num_ops, magnitude=magnitude, num_bins=num_bins, ops=ops,
        height=x.shape[-2], width=x.shape[-1],
    )
    out = apply_rand_augment(x, params)
    return (out, params) if return_params else out
