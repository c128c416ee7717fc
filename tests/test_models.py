"""Tests of akd.models: the taps contract, the RepDistiller CIFAR family, the CPU CNNs, TappedModel."""

from __future__ import annotations

import builtins
import gc
import subprocess
import sys
import textwrap
import weakref
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from akd.errors import ConfigError
from akd.models import MODELS, TAPS, TappedModel, count_parameters, create_model, torchvision_model
from akd.models.hooks import import_torchvision

LITERATURE = [
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4", "resnet32x4",
    "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2",
    "vgg8", "vgg11", "vgg13", "vgg16", "vgg19",
    "MobileNetV2", "ShuffleV1", "ShuffleV2", "ResNet50",
]
CPU_CNNS = ["cnn_tiny", "cnn_small", "cnn_wide"]

# Heaviest models: only the forward-shape test, no backward.
HEAVY = {"ResNet50", "vgg11", "vgg13", "vgg16", "vgg19", "resnet110", "resnet32x4",
         "resnet34_imagenet", "resnet50_imagenet", "mobilenetv2_imagenet", "mobilenetv1_imagenet"}  # slow backward on CPU

# Parameter counts for 100 classes, RGB: published numbers of RepDistiller / CRD (Tian et al. 2020,
# Table 1 and the mdistiller model zoo), in millions.  Asserted within 2%.
PUBLISHED_M = {
    "resnet20": 0.28, "resnet32": 0.47, "resnet56": 0.86, "resnet110": 1.74,
    "resnet8x4": 1.23, "resnet32x4": 7.43,
    "wrn_16_2": 0.70, "wrn_40_1": 0.57, "wrn_40_2": 2.26,
    "vgg8": 3.96, "vgg13": 9.46,
    "MobileNetV2": 0.81, "ShuffleV1": 0.95, "ShuffleV2": 1.36, "ResNet50": 23.71,
}
# Exact counts of the reference implementations (regression pins).
EXACT = {"resnet8x4": 1_233_540, "resnet56": 861_620, "wrn_40_2": 2_255_156, "ResNet50": 23_705_252}

CONFIGS = [(100, 3, 32), (10, 1, 28)]


def _check_taps(model: nn.Module, out: dict, batch: int, num_classes: int) -> None:
    assert model.taps == TAPS == ("logits", "pooled", "map")
    assert set(out) == set(TAPS)
    assert model.num_classes == num_classes
    assert set(model.feature_dims) == {"pooled", "map"}
    logits, pooled, fmap = out["logits"], out["pooled"], out["map"]
    assert logits.shape == (batch, num_classes)
    assert pooled.shape == (batch, model.feature_dims["pooled"])
    assert fmap.dim() == 4 and fmap.shape[:2] == (batch, model.feature_dims["map"])
    assert torch.isfinite(logits).all() and torch.isfinite(pooled).all()
    # built-in models: map after the final ReLU, pooled = its global average
    assert (fmap >= 0).all()
    torch.testing.assert_close(pooled, fmap.mean((2, 3)), rtol=1e-5, atol=1e-5)


def test_all_expected_models_registered():
    for name in LITERATURE + CPU_CNNS:
        assert name in MODELS
    for alias, name in [("mobilenetv2", "MobileNetV2"), ("mobile_half", "MobileNetV2"), ("vgg13_bn", "vgg13"),
                        ("resnet50", "ResNet50")]:
        assert MODELS.get(alias).name == name


@pytest.mark.parametrize("num_classes,in_channels,size", CONFIGS, ids=["cifar100-rgb32", "fmnist-gray28"])
@pytest.mark.parametrize("name", MODELS.names())
def test_forward_taps(name, num_classes, in_channels, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_channels=in_channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    _check_taps(model, out, 2, num_classes)


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n not in HEAVY])
def test_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1).train()
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    out = model(x)
    loss = F.cross_entropy(out["logits"], torch.tensor([0, 1])) + out["pooled"].pow(2).mean() + out["map"].mean()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_parameter_counts_match_repdistiller(name):
    n = count_parameters(create_model(name, num_classes=100))
    assert n / 1e6 == pytest.approx(PUBLISHED_M[name], rel=0.02)
    if name in EXACT:
        assert n == EXACT[name]


def test_state_dict_keys_follow_reference():
    """Module names match RepDistiller, so its CIFAR-100 teacher checkpoints load directly."""
    expected = {
        "resnet8x4": ["conv1.weight", "layer1.0.downsample.0.weight", "layer3.0.bn2.running_var", "fc.weight"],
        "wrn_40_2": ["block1.layer.0.convShortcut.weight", "block3.layer.5.conv2.weight", "bn1.running_mean",
                     "fc.bias"],
        "vgg13": ["block0.0.weight", "block0.4.running_var", "block4.3.bias", "classifier.weight"],
        "MobileNetV2": ["conv1.0.weight", "blocks.6.0.conv.7.weight", "conv2.1.weight", "classifier.0.weight"],
        "ShuffleV1": ["layer1.0.conv1.weight", "layer3.3.bn3.weight", "linear.bias"],
        "ShuffleV2": ["layer1.0.conv5.weight", "layer2.7.bn3.bias", "conv2.weight", "bn2.weight", "linear.weight"],
        "ResNet50": ["layer4.0.shortcut.0.weight", "layer4.2.bn3.weight", "linear.weight"],
    }
    for name, keys in expected.items():
        sd = create_model(name, num_classes=100).state_dict()
        for k in keys:
            assert k in sd, f"{name}: missing state_dict key {k}"
    sd = create_model("resnet8", num_classes=100).state_dict()
    assert not any("downsample" in k for k in sd if k.startswith("layer1."))


def test_cpu_cnns_ordered_by_capacity():
    sizes = [count_parameters(create_model(n, num_classes=10, in_channels=1)) for n in CPU_CNNS]
    assert sizes == sorted(sizes) and sizes[-1] > 8 * sizes[1]


@pytest.mark.parametrize("name", ["cnn_small", "resnet8", "wrn_16_1", "vgg8", "ShuffleV2"])
def test_compiles_without_graph_breaks(name):
    """forward has no data-dependent Python control flow: dynamo captures one full graph."""
    torch._dynamo.reset()
    model = create_model(name, num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 28, 28)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        ref, got = model(x), compiled(x)
    for k in TAPS:
        torch.testing.assert_close(got[k], ref[k])
    torch._dynamo.reset()


# ----------------------------------------------------------------------------- registry / create_model


def test_build_call_like_spec():
    model = MODELS.build("resnet8x4(num_classes=10)")
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 32, 32))
    assert out["logits"].shape == (2, 10) and out["pooled"].shape == (2, 256)
    model = MODELS.build({"name": "wrn_16_1", "num_classes": 7, "in_channels": 1})
    assert model.num_classes == 7 and model.conv1.in_channels == 1


def test_create_model_overrides_and_conflicts():
    model = create_model("cnn_small", num_classes=10, in_channels=1)
    assert model.num_classes == 10 and model.features[0][0].in_channels == 1
    assert create_model("resnet8(num_classes=10)", num_classes=10).num_classes == 10
    assert create_model("wrn_16_1(drop_rate=0.3)", num_classes=5).block1.layer[0].droprate == 0.3
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("resnet8(num_classes=5)", num_classes=10)


def test_unknown_model_suggests_closest():
    with pytest.raises(ConfigError) as e:
        MODELS.build("resnet8x5")
    msg = str(e.value)
    assert "resnet8x5" in msg and "did you mean 'resnet8x4'" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="did you mean 'ShuffleV2'"):
        create_model("ShuffleV3", num_classes=10)


def test_bad_model_parameters():
    with pytest.raises(ConfigError, match="num_classes"):
        MODELS.build("resnet8(num_classes=ten)")
    with pytest.raises(ConfigError, match="num_classes"):
        MODELS.build("resnet8(num_classes=0)")
    with pytest.raises(ConfigError, match="width"):
        MODELS.build("resnet8(width=2)")
    with pytest.raises(ConfigError, match="net_size"):
        MODELS.build("ShuffleV2(net_size=0.7)")


# ----------------------------------------------------------------------------- TappedModel


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(1, 4, 3, padding=1)),
        ("relu", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(4, 3)),
    ]))


def test_tapped_model_matches_manual_slicing():
    net = _net()
    tm = TappedModel(net, {"logits": "fc", "pooled": "pool", "map": "relu"})
    x = torch.randn(2, 1, 8, 8)
    out = tm(x)
    assert tm.taps == ("logits", "pooled", "map")
    assert torch.equal(out["map"], net[:2](x))
    assert torch.equal(out["pooled"], net[:3](x).flatten(1))
    assert out["pooled"].shape == (2, 4)
    assert torch.equal(out["logits"], net(x))
    assert tm.feature_dims == {"pooled": 4, "map": 4} and tm.num_classes == 3


def test_tapped_model_gradients_match_direct_model():
    net = _net()
    tm = TappedModel(net, {"logits": "", "map": "relu"})
    x = torch.randn(2, 1, 8, 8)
    out = tm(x)
    (out["logits"].sum() + out["map"].pow(2).sum()).backward()
    got = net.conv.weight.grad.clone()
    net.zero_grad()
    (net(x).sum() + net[:2](x).pow(2).sum()).backward()
    torch.testing.assert_close(got, net.conv.weight.grad)


def test_tapped_model_output_alias_and_pooled_from_map():
    net = _net()
    tm = TappedModel(net, {"logits": "output", "map": "relu"})
    x = torch.randn(2, 1, 8, 8)
    out = tm(x)
    assert tm.taps == ("logits", "map", "pooled")
    assert torch.equal(out["logits"], net(x))
    torch.testing.assert_close(out["pooled"], net[:2](x).mean((2, 3)))


def test_tapped_model_holds_no_references_between_calls():
    tm = TappedModel(_net(), {"logits": "fc", "pooled": "pool", "map": "relu"})
    out = tm(torch.randn(2, 1, 8, 8))
    refs = [weakref.ref(t) for t in out.values()]
    del out
    gc.collect()
    assert all(r() is None for r in refs)
    assert tm._store is None
    # the wrapper itself is collectable (hooks hold only a weak reference)
    net = _net()
    tm = TappedModel(net, {"map": "relu"})
    ref = weakref.ref(tm)
    del tm
    gc.collect()
    assert ref() is None
    net(torch.randn(1, 1, 4, 4))  # stale hook is harmless


def test_tapped_model_wraps_builtin_model_consistently():
    model = create_model("resnet8", num_classes=10).eval()
    tm = TappedModel(model, {"logits": "fc", "map": "layer3"}, example_input=torch.zeros(1, 3, 32, 32))
    assert tm.feature_dims == model.feature_dims
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref, got = model(x), tm(x)
    for k in TAPS:
        torch.testing.assert_close(got[k], ref[k])


def test_tapped_model_unknown_path():
    with pytest.raises(ConfigError) as e:
        TappedModel(_net(), {"logits": "fc", "map": "reluu"})
    msg = str(e.value)
    assert "'reluu'" in msg and "'relu'" in msg and "map" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="layer4"):
        TappedModel(create_model("resnet8", num_classes=10), {"map": "layer4"})


# ----------------------------------------------------------------------------- torchvision (optional)


def test_torchvision_missing_gives_install_hint():
    try:
        import torchvision  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("torchvision is installed")
    with pytest.raises(ConfigError, match=r"pip install akd\[vision\]"):
        torchvision_model("resnet18", num_classes=10)


@pytest.mark.parametrize("exc", [ImportError, RuntimeError, OSError])
def test_torchvision_import_failure_is_clean(monkeypatch, exc):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torchvision" or name.startswith("torchvision."):
            raise exc("broken torchvision\nsecond line of detail")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ConfigError) as e:
        import_torchvision()
    msg = str(e.value)
    assert "pip install akd[vision]" in msg and exc.__name__ in msg and "\n" not in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_core_import_does_not_import_torchvision():
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torchvision" or name.startswith("torchvision."):
                    raise AssertionError("akd imported torchvision")
        sys.meta_path.insert(0, Block())
        import akd.models
        m = akd.models.create_model("cnn_tiny", num_classes=3)
        assert "torchvision" not in sys.modules
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr
