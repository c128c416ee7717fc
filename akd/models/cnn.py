"""Small CNNs that train in seconds on a CPU (demos, tests, Fashion-MNIST).

Not from the literature: plain conv-BN-ReLU stacks with 2x2 max-pool downsampling,
global average pooling and a linear head, exposing the same taps as the CIFAR
models (``map`` = last conv stage after its ReLU, ``pooled`` its global average).

=========  =========================================  ==========  ==========
name       stages (channels @ resolution for 28x28)   params*     role
=========  =========================================  ==========  ==========
cnn_tiny   8@28 -> 16@14                              ~1.4k       weakest student
cnn_small  16@28 -> 32@14 -> 64@7                     ~24k        student
cnn_wide   32@28 -> 64@14 x2 -> 128@7 x2              ~0.28M      teacher
=========  =========================================  ==========  ==========

\\* for 1 input channel and 10 classes.  All downsampling is by 2x2 max pooling
(it learns Fashion-MNIST markedly faster than stride-2 convolutions at equal width).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import MODELS, TapsModel, check_positive
from ..errors import ConfigError


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SimpleCNN(TapsModel):
    """A stack of conv-BN-ReLU stages; ``stages`` is a list of ``(channels, num_convs)``.

    The first stage keeps the input resolution; every later stage starts with a
    2x2 max pool.  ``features`` holds the convs, ``fc`` the linear head.
    """

    def __init__(self, stages: list[tuple[int, int]], num_classes: int = 10, in_channels: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"cnn dropout={dropout} must be in [0, 1)")
        layers: list[nn.Module] = []
        cin = in_channels
        for i, (cout, n) in enumerate(stages):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(n):
                layers.append(conv_bn_relu(cin, cout))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)
        self._set_dims(num_classes, cin, cin)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._outputs(self.features(x), self.head)


@MODELS.register("cnn_tiny", doc="tiny CPU CNN: 8@28 -> 16@14, GAP, linear (weakest student)")
def cnn_tiny(num_classes: int = 100, in_channels: int = 3) -> SimpleCNN:
    """Two conv-BN-ReLU layers (8 channels, then 16 at stride 2), global average pool, linear."""
    return SimpleCNN([(8, 1), (16, 1)], num_classes, in_channels)


@MODELS.register("cnn_small", doc="small CPU CNN: 16@28 -> 32@14 -> 64@7, GAP, linear (student)")
def cnn_small(num_classes: int = 100, in_channels: int = 3) -> SimpleCNN:
    """Three conv-BN-ReLU layers (16, 32, 64 channels; the last two at stride 2), GAP, linear."""
    return SimpleCNN([(16, 1), (32, 1), (64, 1)], num_classes, in_channels)


@MODELS.register("cnn_wide", doc="wider CPU CNN: 32@28 -> 64@14 x2 -> 128@7 x2, GAP, linear (teacher)")
def cnn_wide(num_classes: int = 100, in_channels: int = 3, dropout: float = 0.0) -> SimpleCNN:
    """Five conv-BN-ReLU layers (32; 64, 64; 128, 128 with stride 2 at each new width), GAP, linear."""
    return SimpleCNN([(32, 1), (64, 2), (128, 2)], num_classes, in_channels, dropout)
