"""Models with named taps: the CIFAR family of the KD literature and small CPU CNNs.

Every model's ``forward(x)`` returns ``{"logits": [B, K], "pooled": [B, D],
"map": [B, C, H, W]}`` and carries ``taps``, ``feature_dims`` and ``num_classes``
(see :mod:`akd.models.base`).  Models are built by name through :data:`MODELS`::

    create_model("resnet8x4", num_classes=100)
    MODELS.build("wrn_40_2(num_classes=10,in_channels=1)")

Registered families (architectures and names follow RepDistiller / mdistiller,
so parameter counts and ``state_dict`` keys match theirs):

* CIFAR ResNets: resnet8/14/20/32/44/56/110, resnet8x4, resnet32x4 (:mod:`.resnet`)
* ResNet50 (CIFAR, Bottleneck) (:mod:`.resnetv2`)
* WideResNets: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2 (:mod:`.wrn`)
* VGG with BN: vgg8/11/13/16/19 (:mod:`.vgg`)
* MobileNetV2 (= mobile_half, alias mobilenetv2) (:mod:`.mobilenetv2`)
* ShuffleV1, ShuffleV2 (:mod:`.shufflenet`)
* small CPU CNNs: cnn_tiny, cnn_small, cnn_wide (:mod:`.cnn`)
* ImageNet (torchvision's architectures and weight names): resnet18_imagenet, resnet34_imagenet,
  resnet50_imagenet, mobilenetv2_imagenet, mobilenetv1_imagenet (:mod:`.imagenet`)

Arbitrary modules get the same taps with :class:`~akd.models.hooks.TappedModel`;
:func:`~akd.models.hooks.torchvision_model` wraps torchvision classifiers
(optional extra ``akd[vision]``, imported lazily).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..errors import ConfigError
from ..registry import Spec, parse_spec
from .base import MODELS, TAPS, TapsModel, count_parameters
from . import cnn, imagenet, mobilenetv2, resnet, resnetv2, shufflenet, vgg, wrn  # noqa: F401  (register models)
from .hooks import TappedModel, torchvision_model

__all__ = [
    "MODELS",
    "TAPS",
    "TapsModel",
    "TappedModel",
    "count_parameters",
    "create_model",
    "torchvision_model",
]


def create_model(spec: Spec, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build the model a spec names for ``num_classes`` classes and ``in_channels`` input channels.

    ``spec`` is a name (``"resnet8x4"``), a call-like string
    (``"wrn_40_2(drop_rate=0.3)"``) or a dict (``{"name": "vgg13"}``).  If the spec
    itself sets ``num_classes`` or ``in_channels`` it must agree with the arguments
    (a data set's class count wins over nothing silently).
    """
    _, params = parse_spec(spec, MODELS.family)
    given = {"num_classes": num_classes, "in_channels": in_channels}
    for key, value in given.items():
        if key in params and params[key] != value:
            raise ConfigError(
                f"model spec {spec!r} sets {key}={params[key]!r} but the data needs {key}={value!r}; "
                f"drop {key} from the spec"
            )
    model: Any = MODELS.build(spec, **given)
    return model
