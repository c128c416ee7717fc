"""ImageNet models with torchvision's architectures and weight names: ResNet-18/34/50, MobileNetV2, MobileNetV1.

Registered names end in ``_imagenet`` (``resnet18_imagenet``, ``resnet34_imagenet``, ``resnet50_imagenet``,
``mobilenetv2_imagenet``, ``mobilenetv1_imagenet``): the CIFAR zoo already owns ``resnet50`` (alias of the CIFAR
``ResNet50``) and ``mobilenetv2`` (alias of RepDistiller's ``mobile_half``), so the ImageNet models get one
unambiguous suffix rather than a case or spelling difference.

Sources (facts followed, no code copied):

* ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) as defined by torchvision
  ``torchvision/models/resnet.py`` ("ResNet v1.5": the stride of a Bottleneck sits on its 3x3 conv):
  7x7/2 stem conv (64) + BN + ReLU + 3x3/2 max-pool; four stages of widths 64/128/256/512 (x4 for Bottleneck),
  strides 1/2/2/2, blocks [2,2,2,2] (18), [3,4,6,3] (34, BasicBlock), [3,4,6,3] (50, Bottleneck); a 1x1/s conv +
  BN ``downsample`` where the shape changes; global average pool; ``fc``.  Weight names ``conv1``, ``bn1``,
  ``layer{1..4}.{i}.{conv,bn}{1..3}``, ``layer{k}.0.downsample.{0,1}``, ``fc``.  Parameters (torchvision's
  published ``num_params``): ResNet-18 11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032.
  Initialisation as torchvision: conv kaiming-normal (fan_out, relu), BN (1, 0), ``fc`` PyTorch's default.
* MobileNetV2 (Sandler et al., CVPR 2018) as defined by torchvision ``torchvision/models/mobilenetv2.py`` (width
  1.0): ``features.0`` = 3x3/2 conv (32) + BN + ReLU6 (a ``Sequential`` 0/1/2); 17 inverted residual blocks
  ``features.1..17`` from ``(t, c, n, s)`` = (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1),
  (6,160,3,2), (6,320,1,1), each ``conv`` = [1x1 expand conv-BN-ReLU6 when t != 1] + 3x3 depthwise conv-BN-ReLU6
  + 1x1 linear conv + BN, residual when stride 1 and equal widths; ``features.18`` = 1x1 conv (1280) + BN + ReLU6;
  ``classifier`` = Dropout(0.2), Linear.  3,504,872 parameters.  Initialisation as torchvision: conv kaiming-normal
  (fan_out), BN (1, 0), linear N(0, 0.01²), zero biases.
* MobileNetV1 (Howard et al., "MobileNets", 2017, Table 1; width 1.0, 224x224): 3x3/2 conv (32) + BN + ReLU, then
  13 depthwise-separable blocks (3x3 depthwise conv-BN-ReLU + 1x1 pointwise conv-BN-ReLU) with output widths
  64, 128, 128, 256, 256, 512 (x6), 1024, 1024 and strides 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1; global average
  pool; ``fc``.  4,231,976 parameters (≈4.2M, as the paper's 4.2M).  torchvision has no MobileNetV1: the module
  names follow the variant used for ImageNet distillation in mdistiller (``mdistiller/models/imagenet/
  mobilenetv1.py``: ``model.{0..13}.{0..5}``, ``fc``), so its published student checkpoints load; its
  ``AvgPool2d(7)`` (no parameters) is replaced by global pooling.  Initialisation: torchvision's ResNet rule.

Every model returns akd's taps (:mod:`akd.models.base`): ``map`` = the last feature map (after its final
activation: ``layer4`` / ``features`` / ``model``), ``pooled`` = its global average, ``logits``.  Global pooling is
adaptive, so the models also run on small inputs (e.g. 32x32 in tests).  ``state_dict()`` has exactly torchvision's
keys and shapes, so ``model.load_state_dict(torchvision_state_dict)`` is strict.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import MODELS, TapsModel, check_positive
from .resnet import BasicBlock, Bottleneck

__all__ = ["ImageNetResNet", "ImageNetMobileNetV2", "ImageNetMobileNetV1"]


def _init_kaiming(model: nn.Module, linear_std: float | None) -> None:
    """torchvision's initialisation: conv kaiming-normal (fan_out, relu), BN weight 1 / bias 0, and linear layers
    N(0, linear_std²) with zero bias when ``linear_std`` is given (MobileNetV2), else PyTorch's default (ResNet)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------- ResNet


class ImageNetResNet(TapsModel):
    """torchvision's ImageNet ResNet (v1.5) with akd's taps; ``block`` BasicBlock or Bottleneck, ``layers`` per stage."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int], num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        dim = 512 * block.expansion
        self.fc = nn.Linear(dim, num_classes)
        self._set_dims(num_classes, dim, dim)
        _init_kaiming(self, linear_std=None)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
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
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # 224 -> 56
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # 56 -> 7
        return self._outputs(x, self.fc)


@MODELS.register("resnet18_imagenet", doc="ImageNet ResNet-18 (torchvision architecture and weight names), 11.69M params")
def resnet18_imagenet(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """torchvision's ResNet-18: BasicBlock, [2, 2, 2, 2]."""
    return ImageNetResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


@MODELS.register("resnet34_imagenet", doc="ImageNet ResNet-34 (torchvision architecture and weight names), 21.80M params")
def resnet34_imagenet(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """torchvision's ResNet-34: BasicBlock, [3, 4, 6, 3]."""
    return ImageNetResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels)


@MODELS.register("resnet50_imagenet", doc="ImageNet ResNet-50 v1.5 (torchvision architecture and weight names), 25.56M params")
def resnet50_imagenet(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """torchvision's ResNet-50: Bottleneck (stride on the 3x3 conv), [3, 4, 6, 3]."""
    return ImageNetResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


# ----------------------------------------------------------------------------------------------- MobileNetV2


def _conv_bn_act(inp: int, oup: int, kernel: int, stride: int, groups: int, act: type[nn.Module]) -> nn.Sequential:
    """conv (no bias, padding (k-1)/2) + BN + activation: torchvision's ``Conv2dNormActivation`` (keys 0/1/2)."""
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(oup), act(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand conv-BN-ReLU6] + 3x3 depthwise conv-BN-ReLU6 + 1x1 linear conv + BN;
    ``x + conv(x)`` when stride 1 and ``inp == oup``."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_act(inp, hidden, 1, 1, 1, nn.ReLU6))
        layers += [_conv_bn_act(hidden, hidden, 3, stride, hidden, nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


#: MobileNetV2's ``(t, c, n, s)``: expansion, output width, repeats, stride of the first repeat
MOBILENETV2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))


class ImageNetMobileNetV2(TapsModel):
    """torchvision's MobileNetV2 (width 1.0) with akd's taps."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        inp, last = 32, 1280
        features: list[nn.Module] = [_conv_bn_act(in_channels, inp, 3, 2, 1, nn.ReLU6)]
        for t, c, n, s in MOBILENETV2_SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(_conv_bn_act(inp, last, 1, 1, 1, nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        self._set_dims(num_classes, last, last)
        _init_kaiming(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._outputs(self.features(x), self.classifier)


@MODELS.register("mobilenetv2_imagenet", doc="ImageNet MobileNetV2 1.0 (torchvision architecture and weight names), 3.50M params")
def mobilenetv2_imagenet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> ImageNetMobileNetV2:
    """torchvision's MobileNetV2, width 1.0, dropout 0.2 before the classifier."""
    return ImageNetMobileNetV2(num_classes, in_channels, dropout)


# ----------------------------------------------------------------------------------------------- MobileNetV1


#: MobileNetV1's depthwise-separable blocks: (output width, stride) (Howard et al. 2017, Table 1)
MOBILENETV1_SETTING = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                       (512, 1), (512, 1), (1024, 2), (1024, 1))


def _depthwise_separable(inp: int, oup: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv-BN-ReLU + 1x1 pointwise conv-BN-ReLU (keys 0..5)."""
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True),
    )


class ImageNetMobileNetV1(TapsModel):
    """MobileNetV1 1.0 (Howard et al. 2017) with mdistiller's ImageNet weight names and akd's taps."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        check_positive("num_classes", num_classes)
        check_positive("in_channels", in_channels)
        layers: list[nn.Module] = [_conv_bn_act(in_channels, 32, 3, 2, 1, nn.ReLU)]
        inp = 32
        for oup, stride in MOBILENETV1_SETTING:
            layers.append(_depthwise_separable(inp, oup, stride))
            inp = oup
        self.model = nn.Sequential(*layers)
        self.fc = nn.Linear(inp, num_classes)
        self._set_dims(num_classes, inp, inp)
        _init_kaiming(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._outputs(self.model(x), self.fc)


@MODELS.register("mobilenetv1_imagenet", doc="ImageNet MobileNetV1 1.0 (Howard et al. 2017; mdistiller weight names), 4.23M params")
def mobilenetv1_imagenet(num_classes: int = 1000, in_channels: int = 3) -> ImageNetMobileNetV1:
    """MobileNetV1, width 1.0 (torchvision has none; see the module docstring for the source)."""
    return ImageNetMobileNetV1(num_classes, in_channels)
