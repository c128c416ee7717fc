"""Virtual views for your own training loop: RandAugment copies of a float, normalised batch.

The akd engine augments uint8 images on the device; a user's loop usually holds float batches that are
already normalised (``(pixel/255 - mean) / std``).  :func:`virtual_views` maps such a batch back to
uint8 pixels, applies akd's batched RandAugment (:func:`akd.data.rand_augment`, the engine's defaults:
2 ops at magnitude 9 of 31 bins) ``k`` times and normalises again, returning the rows an objective with
``views = k`` reads::

    obj = akd.build_objective("vrm")                        # obj.views == 1
    x_all = akd.virtual_views(x, obj.views, g, mean=MEAN, std=STD)   # [(1+k)·B, C, H, W]: [x; v_1; ...]
    losses = obj(student(x_all), teacher(x_all), y, batch_size=x.shape[0])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import ConfigError

__all__ = ["virtual_views"]


def _per_channel(values: float | Sequence[float], c: int, what: str, x: torch.Tensor) -> torch.Tensor:
    vals = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(vals) not in (1, c):
        raise ConfigError(f"virtual_views: {what}={tuple(vals)} needs 1 or {c} values (one per channel)")
    return torch.tensor(vals, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)


def virtual_views(x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None,
                  mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0, *,
                  num_ops: int = 2, magnitude: int = 9) -> torch.Tensor:
    """``[x; v_1; ...; v_k]``: the real batch followed by ``k`` RandAugment views of it, ``[(1+k)·B, C, H, W]``.

    ``x``: float ``[B, C, H, W]`` (C = 1 or 3) normalised as ``(pixel/255 - mean) / std``, with ``mean``/``std``
    in [0, 1] units (one value, or one per channel: what the data set was normalised with).  Each view is
    ``normalise(RandAugment(round(clamp((x·std + mean)·255, 0, 255))))``: ``num_ops`` ops per image with
    ``magnitude`` (of 31 bins), drawn from ``generator`` (on ``x``'s device type; default: a generator seeded
    from torch's global RNG, so ``torch.manual_seed`` makes it repeatable).  The real rows are ``x`` itself;
    the views carry no gradient (they are inputs).  ``k = 0`` returns ``x``.  Pass ``batch_size=B`` to the
    objective (it never infers B from the row count).
    """
    from .data.randaugment import rand_augment

    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 or x.shape[1] not in (1, 3):
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"virtual_views: x must be a float batch [B, C, H, W] with C = 1 or 3, got {got}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"virtual_views: k={k!r} must be an integer >= 0 (the objective's .views)")
    if k == 0:
        return x
    c = x.shape[1]
    m, s = _per_channel(mean, c, "mean", x), _per_channel(std, c, "std", x)
    if bool((s <= 0).any()):
        raise ConfigError(f"virtual_views: std={std!r} must be > 0")
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
    elif generator.device.type != x.device.type:
        raise ConfigError(f"virtual_views: the generator is on {generator.device.type}, the batch on {x.device.type}")
    with torch.no_grad():
        pixels = ((x.detach().float() * s + m) * 255.0).round().clamp_(0, 255).to(torch.uint8)
        views = []
        for _ in range(k):
            out = rand_augment(pixels, generator, num_ops=num_ops, magnitude=magnitude)
            assert isinstance(out, torch.Tensor)  # (return_params=False: the batch alone)
            views.append(((out.float() / 255.0 - m) / s).to(x.dtype))
    return torch.cat([x, *views])
