"""akd.virtual_views: RandAugment views of a float, normalised batch for a user's own loop."""

from __future__ import annotations

import pytest
import torch

import akd
from akd.data import normalize, rand_augment

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _batch(b=6, c=3, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (b, c, size, size), generator=g, dtype=torch.uint8)
    return pixels, normalize(pixels, MEAN[:c], STD[:c])


def test_rows_are_real_then_views_equal_to_engine_randaugment():
    pixels, x = _batch()
    out = akd.virtual_views(x, 2, torch.Generator().manual_seed(3), mean=MEAN, std=STD)
    assert out.shape == (18, 3, 12, 12) and out.dtype == x.dtype
    assert torch.equal(out[:6], x)  # the real rows are the batch itself
    g = torch.Generator().manual_seed(3)
    for v in (1, 2):  # each view = normalise(RandAugment(pixels)), drawn in order from the generator
        want = normalize(rand_augment(pixels, g, num_ops=2, magnitude=9), MEAN, STD)
        assert torch.allclose(out[6 * v:6 * (v + 1)], want, atol=1e-5)
    assert not torch.allclose(out[6:12], x)


def test_one_channel_scalar_stats_and_global_seed():
    _, x = _batch(c=1)
    torch.manual_seed(5)
    a = akd.virtual_views(x, 1, mean=0.4, std=0.2)
    torch.manual_seed(5)
    b = akd.virtual_views(x, 1, mean=0.4, std=0.2)
    assert a.shape == (12, 1, 12, 12) and torch.equal(a, b)
    assert akd.virtual_views(x, 0) is x


def test_views_feed_an_objective_with_batch_size():
    _, x = _batch()
    obj = akd.build_objective("vrm")
    x_all = akd.virtual_views(x, obj.views, torch.Generator().manual_seed(0), mean=MEAN, std=STD)
    net = torch.nn.Linear(3 * 12 * 12, 5)
    out = obj({"logits": net(x_all.flatten(1))}, {"logits": torch.randn(12, 5)}, torch.arange(6) % 5, batch_size=6)
    out["total"].backward()
    assert torch.isfinite(out["total"]) and net.weight.grad is not None


@pytest.mark.parametrize("call, message", [
    (lambda x: akd.virtual_views(x.mul(255).to(torch.uint8), 1), r"x must be a float batch \[B, C, H, W\] with C = 1 or 3, got torch.uint8"),
    (lambda x: akd.virtual_views(x[0], 1), r"x must be a float batch .* got torch.float32 \(3, 12, 12\)"),
    (lambda x: akd.virtual_views(x, -1), r"k=-1 must be an integer >= 0"),
    (lambda x: akd.virtual_views(x, 1, mean=(0.1, 0.2)), r"mean=\(0.1, 0.2\) needs 1 or 3 values"),
    (lambda x: akd.virtual_views(x, 1, std=0.0), r"std=0.0 must be > 0"),
])
def test_bad_input_is_a_config_error(call, message):
    _, x = _batch()
    with pytest.raises(akd.ConfigError, match=r"^virtual_views: " + message):
        call(x)
