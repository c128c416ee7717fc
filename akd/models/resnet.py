"""CIFAR ResNets of the KD literature (resnet8 ... resnet110, resnet8x4, resnet32x4).

Source followed: RepDistiller ``models/resnet.py`` (Tian, Krishnan & Isola,
"Contrastive Representation Distillation", ICLR 2020,
https://github.com/HobbitLong/RepDistiller), itself a port of Wei Yang's
pytorch-classification CIFAR ResNet; the same file is used by mdistiller
(https://github.com/megvii-research/mdistiller, ``mdistiller/models/cifar/resnet.py``).

Architecture (identical widths, depths, block type and module names, so the
parameter counts and ``state_dict`` keys match the reference):

* stem: 3x3 conv (``in_channels`` -> ``w0``, stride 1) + BN + ReLU;
* three stages of ``n = (depth - 2) / 6`` BasicBlocks with widths ``w1, w2, w3``
  and strides 1, 2, 2; a 1x1 conv + BN ``downsample`` shortcut where the shape
  changes (also in stage 1 of the x4 variants, where ``w0 != w1``);
* global average pooling and a linear classifier ``fc``.

Widths are ``(16, 16, 32, 64)`` for resnet8 ... resnet110 and
``(32, 64, 128, 256)`` for resnet8x4 / resnet32x4.

Differences from the reference: the fixed ``AvgPool2d(8)`` is adaptive (same
result on 32x32 inputs, also valid on 28x28), the first conv takes
``in_channels``, and ``forward`` returns the taps dict instead of
``(feats, logits)``.  Taps: ``map`` is the output of ``layer3`` (after the final
ReLU), ``pooled`` its global average (``w3`` dims).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import MODELS, TapsModel, check_positive
from ..errors import ConfigError


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1 conv-BN (``downsample``) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 conv-BN bottleneck (expansion 4) with a residual shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.downsample(x))


class ResNet(TapsModel):
    """CIFAR ResNet: stem conv, three residual stages, global average pool, ``fc``.

    ``depth`` is ``6n+2`` for BasicBlock and ``9n+2`` for Bottleneck;
    ``num_filters`` gives the stem width and the widths of the three stages.
    """

    def __init__(
        self,
        depth: int,
        num_filters: tuple[int, int, int, int] | list[int],
        block_name: str = "basicblock",
        num_classes: int = 100,
        in_channels: int = 3,
    ):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        if block_name.lower() == "basicblock":
            if (depth - 2) % 6 != 0 or depth < 8:
                raise ConfigError(f"ResNet with BasicBlock needs depth 6n+2 (8, 14, 20, 32, ...), got {depth}")
            n, block = (depth - 2) // 6, BasicBlock
        elif block_name.lower() == "bottleneck":
            if (depth - 2) % 9 != 0 or depth < 11:
                raise ConfigError(f"ResNet with Bottleneck needs depth 9n+2 (11, 20, 29, ...), got {depth}")
            n, block = (depth - 2) // 9, Bottleneck
        else:
            raise ConfigError(f"unknown ResNet block '{block_name}'; valid choices: basicblock, bottleneck")

        self.inplanes = num_filters[0]
        self.conv1 = nn.Conv2d(in_channels, num_filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, num_filters[1], n)
        self.layer2 = self._make_layer(block, num_filters[2], n, stride=2)
        self.layer3 = self._make_layer(block, num_filters[3], n, stride=2)
        dim = num_filters[3] * block.expansion
        self.fc = nn.Linear(dim, num_classes)
        self._set_dims(num_classes, dim, dim)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))  # 32x32
        x = self.layer1(x)  # 32x32
        x = self.layer2(x)  # 16x16
        x = self.layer3(x)  # 8x8
        return self._outputs(x, self.fc)


_SMALL = (16, 16, 32, 64)
_X4 = (32, 64, 128, 256)


@MODELS.register("resnet8", doc="CIFAR ResNet-8 (RepDistiller), widths 16/32/64, 0.08M params")
def resnet8(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-8: 1 BasicBlock per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(8, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet14", doc="CIFAR ResNet-14 (RepDistiller), widths 16/32/64, 0.18M params")
def resnet14(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-14: 2 BasicBlocks per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(14, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet20", doc="CIFAR ResNet-20 (RepDistiller), widths 16/32/64, 0.28M params")
def resnet20(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-20: 3 BasicBlocks per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(20, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet32", doc="CIFAR ResNet-32 (RepDistiller), widths 16/32/64, 0.47M params")
def resnet32(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-32: 5 BasicBlocks per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(32, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet44", doc="CIFAR ResNet-44 (RepDistiller), widths 16/32/64, 0.67M params")
def resnet44(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-44: 7 BasicBlocks per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(44, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet56", doc="CIFAR ResNet-56 (RepDistiller), widths 16/32/64, 0.86M params")
def resnet56(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-56: 9 BasicBlocks per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(56, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet110", doc="CIFAR ResNet-110 (RepDistiller), widths 16/32/64, 1.74M params")
def resnet110(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-110: 18 BasicBlocks per stage, widths 16/32/64 (RepDistiller resnet.py)."""
    return ResNet(110, _SMALL, "basicblock", num_classes, in_channels)


@MODELS.register("resnet8x4", doc="CIFAR ResNet-8x4 (RepDistiller), widths 64/128/256, 1.23M params")
def resnet8x4(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-8x4: stem 32, 1 BasicBlock per stage, widths 64/128/256 (RepDistiller resnet.py)."""
    return ResNet(8, _X4, "basicblock", num_classes, in_channels)


@MODELS.register("resnet32x4", doc="CIFAR ResNet-32x4 (RepDistiller), widths 64/128/256, 7.43M params")
def resnet32x4(num_classes: int = 100, in_channels: int = 3) -> ResNet:
    """CIFAR ResNet-32x4: stem 32, 5 BasicBlocks per stage, widths 64/128/256 (RepDistiller resnet.py)."""
    return ResNet(32, _X4, "basicblock", num_classes, in_channels)
