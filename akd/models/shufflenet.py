"""ShuffleNet V1 / V2 for CIFAR (``ShuffleV1``, ``ShuffleV2``).

Sources followed: RepDistiller ``models/ShuffleNetv1.py`` and
``models/ShuffleNetv2.py`` (Tian et al., CRD, ICLR 2020,
https://github.com/HobbitLong/RepDistiller), CIFAR adaptations from kuangliu's
pytorch-cifar of Zhang et al., "ShuffleNet" (CVPR 2018) and Ma et al.,
"ShuffleNet V2" (ECCV 2018); identical to ``mdistiller/models/cifar/ShuffleNetv{1,2}.py``.

ShuffleV1: 1x1 stem conv (``in_channels`` -> 24) + BN + ReLU (no stride, no
max-pool); three stages of ``[4, 8, 4]`` grouped bottlenecks (groups 3, outputs
240/480/960); the first block of each stage has stride 2 and concatenates an
average-pooled shortcut, the others add an identity shortcut; the first 1x1 conv
after the stem is ungrouped (``in_planes == 24``); global average pooling; linear
``linear``.  Taps: ``map`` = ``layer3`` output (960 channels, after ReLU).

ShuffleV2 (net_size 1): 1x1 stem conv (``in_channels`` -> 24) + BN + ReLU; three
stages, each a ``DownBlock`` (stride 2) followed by ``[3, 7, 3]`` split/shuffle
``BasicBlock`` s, widths 116/232/464; 1x1 conv to 1024 + BN + ReLU (``conv2``,
``bn2``); global average pooling; linear ``linear``.  Taps: ``map`` =
``relu(bn2(conv2(layer3(x))))`` (1024 channels).

Differences from the reference: fixed ``avg_pool2d(out, 4)`` is adaptive, the
channel shuffle and split use construction-time channel counts (no
``x.size()`` arithmetic), blocks do not return pre-activations.  Module names match
the reference ``state_dict`` keys.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import MODELS, TapsModel, check_positive
from ..errors import ConfigError


class ShuffleBlock(nn.Module):
    """Channel shuffle: [N, g*c, H, W] -> [N, g, c, H, W] -> transpose -> [N, c*g, H, W]."""

    def __init__(self, groups: int = 2):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


# ----------------------------------------------------------------------------- V1


class ShuffleV1Bottleneck(nn.Module):
    """Grouped 1x1 -> shuffle -> depthwise 3x3 -> grouped 1x1, plus (avg-pooled) shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int):
        super().__init__()
        self.stride = stride
        mid_planes = int(out_planes / 4)
        g = 1 if in_planes == 24 else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, kernel_size=1, groups=g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.shuffle1 = ShuffleBlock(groups=g)
        self.conv2 = nn.Conv2d(mid_planes, mid_planes, kernel_size=3, stride=stride, padding=1,
                               groups=mid_planes, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.shuffle1(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        if self.stride == 2:  # construction-time constant
            return F.relu(torch.cat([out, res], 1))
        return F.relu(out + res)


class ShuffleNetV1(TapsModel):
    """CIFAR ShuffleNet V1 with a config dict ``{'out_planes', 'num_blocks', 'groups'}``."""

    def __init__(self, cfg: dict, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        out_planes, num_blocks, groups = cfg["out_planes"], cfg["num_blocks"], cfg["groups"]
        self.conv1 = nn.Conv2d(in_channels, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_planes = 24
        self.layer1 = self._make_layer(out_planes[0], num_blocks[0], groups)
        self.layer2 = self._make_layer(out_planes[1], num_blocks[1], groups)
        self.layer3 = self._make_layer(out_planes[2], num_blocks[2], groups)
        self.linear = nn.Linear(out_planes[2], num_classes)
        self._set_dims(num_classes, out_planes[2], out_planes[2])

    def _make_layer(self, out_planes: int, num_blocks: int, groups: int) -> nn.Sequential:
        layers = []
        for i in range(num_blocks):
            stride = 2 if i == 0 else 1
            cat_planes = self.in_planes if i == 0 else 0
            layers.append(ShuffleV1Bottleneck(self.in_planes, out_planes - cat_planes, stride=stride, groups=groups))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = F.relu(self.bn1(self.conv1(x)))  # 32
        out = self.layer1(out)  # 16
        out = self.layer2(out)  # 8
        out = self.layer3(out)  # 4
        return self._outputs(out, self.linear)


@MODELS.register("ShuffleV1", aliases=("shufflev1", "shufflenetv1"),
                 doc="CIFAR ShuffleNet V1, groups 3, 240/480/960 (RepDistiller ShuffleNetv1.py), 0.95M params")
def ShuffleV1(num_classes: int = 100, in_channels: int = 3) -> ShuffleNetV1:
    """CIFAR ShuffleNet V1: out_planes 240/480/960, blocks 4/8/4, groups 3 (RepDistiller ShuffleNetv1.py)."""
    cfg = {"out_planes": [240, 480, 960], "num_blocks": [4, 8, 4], "groups": 3}
    return ShuffleNetV1(cfg, num_classes, in_channels)


# ----------------------------------------------------------------------------- V2


class SplitBlock(nn.Module):
    """Split channels into the first ``c`` and the rest (``c`` fixed at construction)."""

    def __init__(self, channels: int, ratio: float = 0.5):
        super().__init__()
        self.ratio = ratio
        self.c = int(channels * ratio)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, : self.c], x[:, self.c:]


class ShuffleV2BasicBlock(nn.Module):
    """Split; right half: 1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU; concat; shuffle."""

    def __init__(self, in_channels: int, split_ratio: float = 0.5):
        super().__init__()
        self.split = SplitBlock(in_channels, split_ratio)
        c = int(in_channels * split_ratio)
        self.conv1 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)
        self.shuffle = ShuffleBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.split(x)
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return self.shuffle(torch.cat([x1, out], 1))


class ShuffleV2DownBlock(nn.Module):
    """Stride-2 unit: both branches downsample, concatenated to ``out_channels``, shuffled."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        # left
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=1,
                               groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        # right
        self.conv3 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, kernel_size=3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)
        self.shuffle = ShuffleBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.bn1(self.conv1(x))
        out1 = F.relu(self.bn2(self.conv2(out1)))
        out2 = F.relu(self.bn3(self.conv3(x)))
        out2 = self.bn4(self.conv4(out2))
        out2 = F.relu(self.bn5(self.conv5(out2)))
        return self.shuffle(torch.cat([out1, out2], 1))


#: ShuffleNetV2 sizes of the reference (``net_size`` -> widths of the 3 stages + last conv, blocks).
V2_CONFIGS: dict[float, dict[str, tuple[int, ...]]] = {
    0.2: {"out_channels": (40, 80, 160, 512), "num_blocks": (3, 3, 3)},
    0.3: {"out_channels": (40, 80, 160, 512), "num_blocks": (3, 7, 3)},
    0.5: {"out_channels": (48, 96, 192, 1024), "num_blocks": (3, 7, 3)},
    1.0: {"out_channels": (116, 232, 464, 1024), "num_blocks": (3, 7, 3)},
    1.5: {"out_channels": (176, 352, 704, 1024), "num_blocks": (3, 7, 3)},
    2.0: {"out_channels": (224, 488, 976, 2048), "num_blocks": (3, 7, 3)},
}


class ShuffleNetV2(TapsModel):
    """CIFAR ShuffleNet V2 of size ``net_size`` (one of :data:`V2_CONFIGS`)."""

    def __init__(self, net_size: float = 1.0, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        if float(net_size) not in V2_CONFIGS:
            raise ConfigError(
                f"unknown ShuffleV2 net_size {net_size}; valid choices: {', '.join(map(str, V2_CONFIGS))}"
            )
        out_channels = V2_CONFIGS[float(net_size)]["out_channels"]
        num_blocks = V2_CONFIGS[float(net_size)]["num_blocks"]
        self.conv1 = nn.Conv2d(in_channels, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_channels = 24
        self.layer1 = self._make_layer(out_channels[0], num_blocks[0])
        self.layer2 = self._make_layer(out_channels[1], num_blocks[1])
        self.layer3 = self._make_layer(out_channels[2], num_blocks[2])
        self.conv2 = nn.Conv2d(out_channels[2], out_channels[3], kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)
        self._set_dims(num_classes, out_channels[3], out_channels[3])

    def _make_layer(self, out_channels: int, num_blocks: int) -> nn.Sequential:
        layers: list[nn.Module] = [ShuffleV2DownBlock(self.in_channels, out_channels)]
        layers += [ShuffleV2BasicBlock(out_channels) for _ in range(num_blocks)]
        self.in_channels = out_channels
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = F.relu(self.bn1(self.conv1(x)))  # 32
        out = self.layer1(out)  # 16
        out = self.layer2(out)  # 8
        out = self.layer3(out)  # 4
        out = F.relu(self.bn2(self.conv2(out)))
        return self._outputs(out, self.linear)


@MODELS.register("ShuffleV2", aliases=("shufflev2", "shufflenetv2"),
                 doc="CIFAR ShuffleNet V2, net_size 1 (RepDistiller ShuffleNetv2.py), 1.36M params")
def ShuffleV2(num_classes: int = 100, in_channels: int = 3, net_size: float = 1.0) -> ShuffleNetV2:
    """CIFAR ShuffleNet V2, net_size 1: widths 116/232/464, blocks 3/7/3, 1024-d (RepDistiller ShuffleNetv2.py)."""
    return ShuffleNetV2(net_size, num_classes, in_channels)
