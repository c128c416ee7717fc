"""ImageNet models: parameter counts and state_dict names/shapes equal torchvision's (torchvision cannot be imported
here, so the expectations are facts read from torchvision's definitions and published weight metadata)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from akd.models import MODELS, count_parameters, create_model

#: torchvision's published ``num_params`` (weights metadata of resnet18/34/50 and mobilenet_v2); MobileNetV1 has no
#: torchvision reference: Howard et al. 2017 report 4.2M for the 1.0-width 224 model
PUBLISHED_PARAMS = {
    "resnet18_imagenet": 11_689_512,
    "resnet34_imagenet": 21_797_672,
    "resnet50_imagenet": 25_557_032,
    "mobilenetv2_imagenet": 3_504_872,
}

#: (number of state_dict entries, sha256[:16] of "name:shape;..." over the sorted entries)
STATE_FIXTURE = {
    "resnet18_imagenet": (122, "1d7f62bbb041e7aa"),
    "resnet34_imagenet": (218, "717f42d90328364e"),
    "resnet50_imagenet": (320, "cadd4778a67d69df"),
    "mobilenetv2_imagenet": (314, "058e2a8d0c5d0506"),
    "mobilenetv1_imagenet": (164, "948d4eb9ec6ba5b7"),
}

#: spot entries, read off torchvision's module definitions (mdistiller's for MobileNetV1)
SPOT = {
    "resnet18_imagenet": {"conv1.weight": (64, 3, 7, 7), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                          "layer4.1.bn2.running_var": (512,), "fc.weight": (1000, 512)},
    "resnet50_imagenet": {"layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer3.5.conv2.weight": (256, 256, 3, 3),
                          "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048)},
    "mobilenetv2_imagenet": {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                             "features.1.conv.1.weight": (16, 32, 1, 1), "features.2.conv.0.0.weight": (96, 16, 1, 1),
                             "features.17.conv.2.weight": (320, 960, 1, 1), "features.18.0.weight": (1280, 320, 1, 1),
                             "classifier.1.weight": (1000, 1280)},
    "mobilenetv1_imagenet": {"model.0.0.weight": (32, 3, 3, 3), "model.1.0.weight": (32, 1, 3, 3),
                             "model.13.3.weight": (1024, 1024, 1, 1), "fc.weight": (1000, 1024)},
}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet_keys(layers: list[int], bottleneck: bool) -> dict[str, tuple[int, ...]]:
    """The state_dict torchvision's ``ResNet`` has, enumerated from its definition (not from akd's code)."""
    exp = 4 if bottleneck else 1
    out = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            if bottleneck:
                shapes = [(planes, inplanes, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            else:
                shapes = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            for k, s in enumerate(shapes, start=1):
                out[f"{p}.conv{k}.weight"] = s
                out.update(_bn(f"{p}.bn{k}", s[0]))
            if i == 0 and (stage > 1 or inplanes != planes * exp):
                out[f"{p}.downsample.0.weight"] = (planes * exp, inplanes, 1, 1)
                out.update(_bn(f"{p}.downsample.1", planes * exp))
            inplanes = planes * exp
    out["fc.weight"], out["fc.bias"] = (1000, 512 * exp), (1000,)
    return out


def torchvision_mobilenetv2_keys() -> dict[str, tuple[int, ...]]:
    out = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    inp, idx = 32, 1
    for t, c, n, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for _ in range(n):
            p, hid, j = f"features.{idx}.conv", inp * t, 0
            if t != 1:
                out[f"{p}.0.0.weight"] = (hid, inp, 1, 1)
                out.update(_bn(f"{p}.0.1", hid))
                j = 1
            out[f"{p}.{j}.0.weight"] = (hid, 1, 3, 3)
            out.update(_bn(f"{p}.{j}.1", hid))
            out[f"{p}.{j + 1}.weight"] = (c, hid, 1, 1)
            out.update(_bn(f"{p}.{j + 2}", c))
            inp, idx = c, idx + 1
    out[f"features.{idx}.0.weight"] = (1280, inp, 1, 1)
    out.update(_bn(f"features.{idx}.1", 1280))
    out["classifier.1.weight"], out["classifier.1.bias"] = (1000, 1280), (1000,)
    return out


def _shapes(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in create_model(name, 1000).state_dict().items()}


@pytest.mark.parametrize("name,count", sorted(PUBLISHED_PARAMS.items()))
def test_parameter_counts_equal_torchvisions_published_counts(name, count):
    assert count_parameters(create_model(name, 1000)) == count


def test_mobilenetv1_has_the_papers_size():
    assert round(count_parameters(create_model("mobilenetv1_imagenet", 1000)) / 1e6, 1) == 4.2


@pytest.mark.parametrize("name,layers,bottleneck", [("resnet18_imagenet", [2, 2, 2, 2], False),
                                                    ("resnet34_imagenet", [3, 4, 6, 3], False),
                                                    ("resnet50_imagenet", [3, 4, 6, 3], True)])
def test_resnet_state_dict_is_torchvisions(name, layers, bottleneck):
    assert _shapes(name) == torchvision_resnet_keys(layers, bottleneck)


def test_mobilenetv2_state_dict_is_torchvisions():
    assert _shapes("mobilenetv2_imagenet") == torchvision_mobilenetv2_keys()


@pytest.mark.parametrize("name", sorted(STATE_FIXTURE))
def test_state_dict_fixture_and_spot_entries(name):
    shapes = _shapes(name)
    text = ";".join(f"{k}:{'x'.join(map(str, s))}" for k, s in sorted(shapes.items()))
    assert (len(shapes), hashlib.sha256(text.encode()).hexdigest()[:16]) == STATE_FIXTURE[name]
    for key, shape in SPOT.get(name, {}).items():
        assert shapes[key] == shape, key


@pytest.mark.parametrize("name", sorted(STATE_FIXTURE))
def test_taps_and_strict_round_trip(name):
    m = create_model(name, 10).eval()
    out = m(torch.randn(2, 3, 32, 32))
    assert out["logits"].shape == (2, 10) and out["pooled"].shape == (2, m.feature_dims["pooled"])
    assert out["map"].shape[:2] == (2, m.feature_dims["map"])
    other = create_model(name, 10)
    other.load_state_dict(m.state_dict(), strict=True)  # a torchvision-shaped state_dict loads strictly


def test_names_do_not_collide_with_the_cifar_zoo():
    for n in STATE_FIXTURE:
        assert n in MODELS and n.endswith("_imagenet")
    assert MODELS.get("resnet50").name == "ResNet50" and MODELS.get("mobilenetv2").name == "MobileNetV2"


def test_torchvision_style_bare_state_dict_loads_as_a_teacher_file(tmp_path):
    """torchvision's published .pth files are bare state_dicts: teacher_files reads them ('bare') and loads strictly."""
    from akd.engine.teacher_files import read_weights, strict_load

    src = create_model("resnet18_imagenet", 1000)
    torch.save(src.state_dict(), tmp_path / "resnet18.pth")
    sd, meta = read_weights(tmp_path / "resnet18.pth")
    assert meta["format"] == "bare"
    dst = create_model("resnet18_imagenet", 1000)
    strict_load(dst, sd, str(tmp_path / "resnet18.pth"), "resnet18_imagenet")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_published_imagenet_table_is_found_for_the_imagenet_alias():
    from akd.published import published_cell, published_teacher_acc

    spec = "imagenet(root=/data/imagenet,size=224)"
    assert published_cell(spec, "resnet34_imagenet", "resnet18_imagenet", "dkd")["acc"] == 71.70
    assert published_cell(spec, "resnet50_imagenet", "mobilenetv2_imagenet", "vrm")["acc"] == 74.0
    assert published_cell(spec, "resnet50_imagenet", "mobilenetv2_imagenet", "dkd") is None  # not reported: empty
    assert published_teacher_acc(spec, "resnet34_imagenet")["acc"] == 73.314
