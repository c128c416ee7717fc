"""VGG with batch norm for CIFAR (vgg8, vgg11, vgg13, vgg16, vgg19).

Source followed: RepDistiller ``models/vgg.py`` (Tian et al., CRD, ICLR 2020,
https://github.com/HobbitLong/RepDistiller; original author Wei Yang), whose
``model_dict`` maps ``vggN`` to the ``vggN_bn`` (batch-norm) variants; identical
to ``mdistiller/models/cifar/vgg.py``.  "VGG for CIFAR, FC layers removed."

Architecture: five conv blocks ``block0 .. block4`` (3x3 conv with bias + BN +
ReLU, configurations below); 2x2 max-pools after blocks 0, 1 and 2 (on 32x32
inputs block3 and block4 both run at 4x4, as in the reference); global average
pooling; one linear ``classifier`` 512 -> num_classes.  Each block's
``nn.Sequential`` ends with its last BN (the ReLU is applied in ``forward``), so
the ``state_dict`` keys match the reference.

Configurations (channels per conv, per block)::

    vgg8  'S': [64], [128], [256], [512], [512]
    vgg11 'A': [64], [128], [256, 256], [512, 512], [512, 512]
    vgg13 'B': [64, 64], [128, 128], [256, 256], [512, 512], [512, 512]
    vgg16 'D': [64, 64], [128, 128], [256]*3, [512]*3, [512]*3
    vgg19 'E': [64, 64], [128, 128], [256]*4, [512]*4, [512]*4

Difference: the reference adds a fourth max-pool when the input is 64x64
(``if h == 64``, for Tiny-ImageNet); this data-dependent branch is dropped (global
average pooling handles any input size).  Taps: ``map`` is ``relu(block4(x))``
(512 channels), ``pooled`` its global average.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import init_weights_normal, MODELS, TapsModel, check_positive

CFG: dict[str, list[list[int]]] = {
    "S": [[64], [128], [256], [512], [512]],
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _make_block(cfg: list[int], batch_norm: bool, in_channels: int) -> nn.Sequential:
    """conv(+BN)+ReLU per entry, without the last ReLU (applied in forward)."""
    layers: list[nn.Module] = []
    for v in cfg:
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers[:-1])


class VGG(TapsModel):
    """CIFAR VGG: five conv blocks, three max-pools, global average pool, linear head."""

    def __init__(self, cfg: list[list[int]], batch_norm: bool = True, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        self.block0 = _make_block(cfg[0], batch_norm, in_channels)
        self.block1 = _make_block(cfg[1], batch_norm, cfg[0][-1])
        self.block2 = _make_block(cfg[2], batch_norm, cfg[1][-1])
        self.block3 = _make_block(cfg[3], batch_norm, cfg[2][-1])
        self.block4 = _make_block(cfg[4], batch_norm, cfg[3][-1])
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        dim = cfg[4][-1]
        self.classifier = nn.Linear(dim, num_classes)
        self._set_dims(num_classes, dim, dim)

        init_weights_normal(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.pool0(F.relu(self.block0(x)))  # 32 -> 16
        x = self.pool1(F.relu(self.block1(x)))  # 16 -> 8
        x = self.pool2(F.relu(self.block2(x)))  # 8 -> 4
        x = F.relu(self.block3(x))  # 4
        x = F.relu(self.block4(x))  # 4
        return self._outputs(x, self.classifier)


@MODELS.register("vgg8", aliases=("vgg8_bn",), doc="VGG-8 with BN for CIFAR, cfg S (RepDistiller vgg.py), 3.96M params")
def vgg8(num_classes: int = 100, in_channels: int = 3) -> VGG:
    """VGG-8 with batch norm, configuration 'S' (RepDistiller vgg8_bn)."""
    return VGG(CFG["S"], True, num_classes, in_channels)


@MODELS.register("vgg11", aliases=("vgg11_bn",), doc="VGG-11 with BN for CIFAR, cfg A (RepDistiller vgg.py), 9.28M params")
def vgg11(num_classes: int = 100, in_channels: int = 3) -> VGG:
    """VGG-11 with batch norm, configuration 'A' (RepDistiller vgg11_bn)."""
    return VGG(CFG["A"], True, num_classes, in_channels)


@MODELS.register("vgg13", aliases=("vgg13_bn",), doc="VGG-13 with BN for CIFAR, cfg B (RepDistiller vgg.py), 9.46M params")
def vgg13(num_classes: int = 100, in_channels: int = 3) -> VGG:
    """VGG-13 with batch norm, configuration 'B' (RepDistiller vgg13_bn)."""
    return VGG(CFG["B"], True, num_classes, in_channels)


@MODELS.register("vgg16", aliases=("vgg16_bn",), doc="VGG-16 with BN for CIFAR, cfg D (RepDistiller vgg.py), 14.77M params")
def vgg16(num_classes: int = 100, in_channels: int = 3) -> VGG:
    """VGG-16 with batch norm, configuration 'D' (RepDistiller vgg16_bn)."""
    return VGG(CFG["D"], True, num_classes, in_channels)


@MODELS.register("vgg19", aliases=("vgg19_bn",), doc="VGG-19 with BN for CIFAR, cfg E (RepDistiller vgg.py), 20.09M params")
def vgg19(num_classes: int = 100, in_channels: int = 3) -> VGG:
    """VGG-19 with batch norm, configuration 'E' (RepDistiller vgg19_bn)."""
    return VGG(CFG["E"], True, num_classes, in_channels)
