"""Per-image decoding and the standard ImageNet augmentation, with seeded per-sample randomness.

Decoding (:data:`DECODERS`): ``pil`` (Pillow, the default; every image is converted to RGB, as torchvision's
``pil_loader`` does) or ``simplejpeg`` (libjpeg-turbo, optional: ``pip install simplejpeg``, imported lazily on first
use; JPEG files only, other files fall back to Pillow).  ``auto`` picks ``simplejpeg`` when it is importable.
Decoders may differ in the last bit of a pixel (IDCT implementations), so the decoder is part of the data set spec.

Training view (torchvision's ``RandomResizedCrop(size)`` + ``RandomHorizontalFlip()`` on a PIL image), per sample,
from a ``random.Random`` seeded with ``derive_seed(seed, epoch, index)`` -- so a sample's view depends only on
(seed, epoch, sample index): not on the worker, the batch it lands in, the world size or where a run resumed:

    for 10 attempts:                                   (scale = (0.08, 1), ratio = (3/4, 4/3))
        area  = W·H · U(scale)
        r     = exp(U(log ratio))
        w, h  = round(sqrt(area·r)), round(sqrt(area/r))
        if 0 < w <= W and 0 < h <= H:  i ~ U{0..H-h}, j ~ U{0..W-w};  done
    else (fallback): the central crop of the whole image clipped to the ratio range
        (W/H < 3/4: w = W, h = round(W / (3/4));  W/H > 4/3: h = H, w = round(H · 4/3);  else the whole image)
    crop (i, j, h, w), resize to size x size (bilinear, Pillow's antialiasing), flip left-right if U(0,1) < 1/2.

Evaluation view (torchvision's ``Resize(round(size·8/7))`` + ``CenterCrop(size)``; 256/224 for size 224): the
shorter side to ``s = round(size·8/7)`` and the longer to ``int(s·long/short)`` (bilinear), then the central
``size x size`` window at ``top = round((H'-size)/2)``, ``left = round((W'-size)/2)``.

Output: uint8 ``[3, size, size]`` tensors; normalisation happens on the device (:func:`akd.data.normalize`).
"""

from __future__ import annotations

import math
import random
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError, unknown

__all__ = ["DECODERS", "resolve_decoder", "random_resized_crop_box", "train_view", "eval_view", "eval_resize",
           "to_tensor", "SCALE", "RATIO"]

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


def _pil_decode(path: str):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def _simplejpeg_decode(path: str):
    import simplejpeg
    from PIL import Image

    if not path.lower().endswith((".jpg", ".jpeg")):
        return _pil_decode(path)
    with open(path, "rb") as f:
        data = f.read()
    return Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB"))


#: decoder name -> function(path) -> RGB PIL image
DECODERS: dict[str, Callable[[str], object]] = {"pil": _pil_decode, "simplejpeg": _simplejpeg_decode}


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def resolve_decoder(name: str) -> str:
    """``auto`` -> ``simplejpeg`` if importable else ``pil``; a named decoder must exist and be importable."""
    if name == "auto":
        return "simplejpeg" if _importable("simplejpeg") else "pil"
    if name not in DECODERS:
        raise unknown("decoder", name, ["auto", *DECODERS])
    needs = {"pil": "PIL", "simplejpeg": "simplejpeg"}[name]
    if not _importable(needs):
        raise ConfigError(f"decoder '{name}' needs the package {needs!r}, which is not installed; install it or use decoder=pil")
    return name


def decode(path: str, decoder: str):
    """The RGB PIL image at ``path``; DataError naming the file when it cannot be decoded."""
    try:
        return DECODERS[decoder](path)
    except Exception as e:  # any decoder failure (truncated file, not an image, I/O error) is the file's fault
        raise DataError(f"cannot decode image {path} ({type(e).__name__}: {e}); replace or delete it") from None


def random_resized_crop_box(width: int, height: int, rng: random.Random, scale: tuple[float, float] = SCALE,
                            ratio: tuple[float, float] = RATIO) -> tuple[int, int, int, int]:
    """``(i, j, h, w)``: top, left, height, width of torchvision's RandomResizedCrop window (formula above)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    w, h = width, height
    if in_ratio < min(ratio):
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        w = int(round(h * max(ratio)))
    return (height - h) // 2, (width - w) // 2, h, w


def to_tensor(img) -> torch.Tensor:
    """RGB PIL image -> uint8 ``[3, H, W]``."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def train_view(img, size: int, rng: random.Random):
    """Random-resized crop to ``size`` and a random horizontal flip of a PIL image (draws from ``rng``)."""
    from PIL import Image

    i, j, h, w = random_resized_crop_box(img.width, img.height, rng)
    out = img.crop((j, i, j + w, i + h)).resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


def eval_resize(size: int) -> int:
    """The shorter side before the centre crop: ``round(size · 8/7)`` (256 for 224)."""
    return int(round(size * 8 / 7))


def eval_view(img, size: int, resize: int | None = None):
    """Shorter side to ``resize`` (default :func:`eval_resize`), then the central ``size x size`` window."""
    from PIL import Image

    s = eval_resize(size) if resize is None else resize
    w, h = img.width, img.height
    nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return img.crop((left, top, left + size, top + size))
