"""The named-taps contract shared by every akd model.

Every model's ``forward(x)`` returns a plain dict of tensors::

    {"logits": [B, num_classes],   # classifier output
     "pooled": [B, D],             # penultimate vector, after global average pooling
     "map":    [B, C, H, W]}       # last-stage feature map, before pooling
                                   # (after the final ReLU where the architecture has one)

and carries three attributes: ``taps = ("logits", "pooled", "map")``,
``feature_dims = {"pooled": D, "map": C}`` and ``num_classes``.

Distillation methods read the taps by name, so a teacher and a student of
different families plug into the same objective.  ``forward`` has no
data-dependent Python control flow, so the models run under ``torch.compile``
(``fullgraph=True``) and ``torch.fx`` tracing.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry

#: The model family registry; factories are ``name(num_classes: int = 100, in_channels: int = 3, ...)``.
MODELS = Registry("model")

TAPS: tuple[str, ...] = ("logits", "pooled", "map")


class TapsModel(nn.Module):
    """Base class of the built-in models: stores ``num_classes``/``feature_dims``.

    Subclasses build their layers, call :meth:`_set_dims` and return
    :meth:`_outputs` (``fmap`` -> global average pool -> ``head``) from ``forward``.
    """

    taps: tuple[str, ...] = TAPS

    def __init__(self) -> None:
        super().__init__()
        self.num_classes: int = 0
        self.feature_dims: dict[str, int] = {}

    def _set_dims(self, num_classes: int, pooled: int, fmap: int) -> None:
        self.num_classes = int(num_classes)
        self.feature_dims = {"pooled": int(pooled), "map": int(fmap)}

    @staticmethod
    def _outputs(fmap: torch.Tensor, head: nn.Module) -> dict[str, torch.Tensor]:
        """The taps dict from the last feature map and the classifier ``head``.

        Adaptive (global) average pooling replaces the fixed-size ``AvgPool2d`` of
        the reference code, so the CIFAR models also run on 28x28 inputs; on the
        input sizes the references were written for the result is identical.
        """
        pooled = torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)
        return {"logits": head(pooled), "pooled": pooled, "map": fmap}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feature_dims={self.feature_dims}"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all, or only those requiring grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_positive(name: str, value: int) -> None:
    """ConfigError unless ``value`` is a positive integer (num_classes, in_channels, widths)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model parameter {name}={value!r} must be a positive integer")


def init_weights_normal(model: nn.Module) -> None:
    """RepDistiller's ``_initialize_weights`` (VGG, MobileNetV2): conv ~ N(0, 2/(k·k·C_out)), BN = (1, 0),
    linear ~ N(0, 0.01²), zero biases."""
    import math

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
