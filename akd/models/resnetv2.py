"""CIFAR ResNet-50 (the ``ResNet50`` teacher of the KD literature).

Source followed: RepDistiller ``models/resnetv2.py`` (Tian et al., CRD, ICLR 2020,
https://github.com/HobbitLong/RepDistiller), the CIFAR ResNet of kuangliu's
pytorch-cifar; also ``mdistiller/models/cifar/resnetv2.py``.

Architecture: 3x3 stem conv (``in_channels`` -> 64, stride 1, no max-pool) + BN +
ReLU; four stages of Bottleneck blocks ``[3, 4, 6, 3]`` with widths
64/128/256/512 (output 256/512/1024/2048) and strides 1/2/2/2; a 1x1 conv + BN
``shortcut`` where the shape changes; adaptive global average pooling; linear
classifier ``linear``.  Module names match the reference, so RepDistiller
checkpoints load with ``load_state_dict``.

Taps: ``map`` is the ``layer4`` output (2048 channels, after the final ReLU;
4x4 on 32x32 inputs), ``pooled`` its global average.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import MODELS, TapsModel, check_positive


class BasicBlockV2(nn.Module):
    """Two 3x3 conv-BN layers with a ``shortcut`` (identity or 1x1 conv-BN)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class BottleneckV2(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 conv-BN bottleneck, expansion 4, with a ``shortcut``."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNetV2(TapsModel):
    """kuangliu-style CIFAR ResNet with four stages (64/128/256/512 planes)."""

    def __init__(self, block: type, num_blocks: list[int], num_classes: int = 100, in_channels: int = 3,
                 zero_init_residual: bool = False):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
        dim = 512 * block.expansion
        self.linear = nn.Linear(dim, num_classes)
        self._set_dims(num_classes, dim, dim)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BottleneckV2):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlockV2):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block: type, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        return self._outputs(out, self.linear)


@MODELS.register("ResNet50", aliases=("resnet50",), doc="CIFAR ResNet-50, Bottleneck [3,4,6,3] (RepDistiller resnetv2.py), 23.7M params")
def ResNet50(num_classes: int = 100, in_channels: int = 3, zero_init_residual: bool = False) -> ResNetV2:
    """CIFAR ResNet-50: 3x3 stem, Bottleneck blocks [3, 4, 6, 3], 2048-d features (RepDistiller resnetv2.py)."""
    return ResNetV2(BottleneckV2, [3, 4, 6, 3], num_classes, in_channels, zero_init_residual)
