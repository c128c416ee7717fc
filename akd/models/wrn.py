"""Wide ResNets for CIFAR (wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2).

Source followed: RepDistiller ``models/wrn.py`` (Tian et al., CRD, ICLR 2020,
https://github.com/HobbitLong/RepDistiller; original author Wei Yang), after
Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016); identical to
``mdistiller/models/cifar/wrn.py``.

Architecture ``WRN-d-k``: 3x3 stem conv (``in_channels`` -> 16); three groups of
``n = (d - 4) / 6`` pre-activation BasicBlocks (BN-ReLU-conv-BN-ReLU-conv, 1x1
``convShortcut`` where the width changes) with widths ``16k, 32k, 64k`` and
strides 1, 2, 2; final BN + ReLU; global average pooling; linear ``fc``.
Module names (``block1.layer.0.conv1`` ...) match the reference.

Taps: ``map`` is ``relu(bn1(block3(x)))`` (64k channels, after the final ReLU),
``pooled`` its global average.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import MODELS, TapsModel, check_positive
from ..errors import ConfigError


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus shortcut.

    When the width changes, the first BN-ReLU is shared by the residual branch and
    the 1x1 ``convShortcut`` (as in the reference implementation).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = float(drop_rate)
        self.equalInOut = in_planes == out_planes
        self.convShortcut = (
            None if self.equalInOut
            else nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Branches on construction-time constants only (traceable / compilable).
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        return shortcut + out


class NetworkBlock(nn.Module):
    """A group of ``nb_layers`` wide blocks (the first one carries the stride)."""

    def __init__(self, nb_layers: int, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(nb_layers)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(TapsModel):
    """WRN-depth-widen_factor for 32x32 (or 28x28) inputs."""

    def __init__(self, depth: int, num_classes: int = 100, widen_factor: int = 1, drop_rate: float = 0.0,
                 in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        check_positive("widen_factor", widen_factor)
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ConfigError(f"WideResNet depth must be 6n+4 (10, 16, 22, 28, 40, ...), got {depth}")
        if not 0.0 <= drop_rate < 1.0:
            raise ConfigError(f"WideResNet drop_rate={drop_rate} must be in [0, 1)")
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, ch[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]
        self._set_dims(num_classes, ch[3], ch[3])

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        return self._outputs(out, self.fc)


@MODELS.register("wrn_16_1", doc="WideResNet-16-1 for CIFAR (RepDistiller wrn.py), 0.18M params")
def wrn_16_1(num_classes: int = 100, in_channels: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WRN-16-1: depth 16, widen factor 1 (widths 16/32/64) (RepDistiller wrn.py)."""
    return WideResNet(16, num_classes, 1, drop_rate, in_channels)


@MODELS.register("wrn_16_2", doc="WideResNet-16-2 for CIFAR (RepDistiller wrn.py), 0.70M params")
def wrn_16_2(num_classes: int = 100, in_channels: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WRN-16-2: depth 16, widen factor 2 (widths 32/64/128) (RepDistiller wrn.py)."""
    return WideResNet(16, num_classes, 2, drop_rate, in_channels)


@MODELS.register("wrn_40_1", doc="WideResNet-40-1 for CIFAR (RepDistiller wrn.py), 0.57M params")
def wrn_40_1(num_classes: int = 100, in_channels: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WRN-40-1: depth 40, widen factor 1 (widths 16/32/64) (RepDistiller wrn.py)."""
    return WideResNet(40, num_classes, 1, drop_rate, in_channels)


@MODELS.register("wrn_40_2", doc="WideResNet-40-2 for CIFAR (RepDistiller wrn.py), 2.26M params")
def wrn_40_2(num_classes: int = 100, in_channels: int = 3, drop_rate: float = 0.0) -> WideResNet:
    """WRN-40-2: depth 40, widen factor 2 (widths 32/64/128) (RepDistiller wrn.py)."""
    return WideResNet(40, num_classes, 2, drop_rate, in_channels)
