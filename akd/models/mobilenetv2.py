"""MobileNetV2 for CIFAR (``MobileNetV2`` = RepDistiller ``mobile_half``).

Source followed: RepDistiller ``models/mobilenetv2.py`` (Tian et al., CRD, ICLR
2020, https://github.com/HobbitLong/RepDistiller), the implementation of "Knowledge
Distillation via Route Constrained Optimization" (Jin et al., ICCV 2019); the
KD literature's ``MobileNetV2`` student is ``mobile_half`` = expansion ``T = 6``,
width multiplier ``0.5`` (also ``mdistiller/models/cifar/mobilenetv2.py``).

Architecture: 3x3 stem conv, stride 2 (``in_channels`` -> int(32w)) + BN + ReLU;
seven groups of inverted residual blocks ``(t, c, n, s)``::

    (1, 16, 1, 1), (T, 24, 2, 1), (T, 32, 3, 2), (T, 64, 4, 2),
    (T, 96, 3, 1), (T, 160, 3, 2), (T, 320, 1, 1)

with ``c`` scaled by ``w``; a 1x1 conv to 1280 channels (``int(1280 w)`` when
``w > 1``) + BN + ReLU; global average pooling (2x2 on 32x32 inputs); a linear
classifier (``classifier.0``).  Module names match the reference.

Taps: ``map`` is the output of ``conv2`` (1280 channels, after its ReLU),
``pooled`` its global average.
"""

from __future__ import annotations


import torch
import torch.nn as nn

from .base import init_weights_normal, MODELS, TapsModel, check_positive
from ..errors import ConfigError


def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    """3x3 conv + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


def conv_1x1_bn(inp: int, oup: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """Pointwise expand -> depthwise 3x3 -> pointwise-linear project; residual if shapes match.

    As in the reference, the expansion conv is present even when ``expand_ratio == 1``.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        hidden = inp * expand_ratio
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),  # pw
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),  # dw
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),  # pw-linear
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:  # construction-time constant
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(TapsModel):
    """CIFAR MobileNetV2 with expansion ``T`` and width multiplier ``width_mult``."""

    def __init__(self, T: int = 6, num_classes: int = 100, width_mult: float = 0.5, in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        check_positive("expand_ratio", T)
        if not width_mult > 0:
            raise ConfigError(f"MobileNetV2 width_mult={width_mult} must be > 0")
        setting = [
            # t, c, n, s
            [1, 16, 1, 1],
            [T, 24, 2, 1],
            [T, 32, 3, 2],
            [T, 64, 4, 2],
            [T, 96, 3, 1],
            [T, 160, 3, 2],
            [T, 320, 1, 1],
        ]
        input_channel = int(32 * width_mult)
        if min(input_channel, *(int(c * width_mult) for _, c, _, _ in setting)) < 1:
            raise ConfigError(f"MobileNetV2 width_mult={width_mult} is too small (a layer would have 0 channels)")
        self.conv1 = conv_bn(in_channels, input_channel, 2)
        self.blocks = nn.ModuleList([])
        for t, c, n, s in setting:
            output_channel = int(c * width_mult)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(input_channel, output_channel, stride, t))
                input_channel = output_channel
            self.blocks.append(nn.Sequential(*layers))
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = conv_1x1_bn(input_channel, self.last_channel)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        self._set_dims(num_classes, self.last_channel, self.last_channel)

        init_weights_normal(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.conv1(x)  # 32 -> 16
        for block in self.blocks:  # static unrolled loop over modules
            out = block(out)  # 16 -> 16 -> 16 -> 8 -> 4 -> 4 -> 2 -> 2
        out = self.conv2(out)
        return self._outputs(out, self.classifier)


@MODELS.register(
    "MobileNetV2",
    aliases=("mobilenetv2", "mobile_half"),
    doc="CIFAR MobileNetV2, T=6, width 0.5 (RepDistiller mobile_half), 0.81M params",
)
def mobilenetv2(num_classes: int = 100, in_channels: int = 3, width_mult: float = 0.5,
                expand_ratio: int = 6) -> MobileNetV2:
    """CIFAR MobileNetV2 (RepDistiller ``mobile_half``: expansion 6, width multiplier 0.5)."""
    return MobileNetV2(expand_ratio, num_classes, width_mult, in_channels)
