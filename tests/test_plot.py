"""Tests of akd.plot: PNG encoding and the pure-numpy bar chart renderer."""

from __future__ import annotations

import builtins
import math
import struct
import zlib

import numpy as np
import pytest

from akd import plot
from akd.plot import BEST_COLOR, LAST_COLOR, bar_plot, write_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes) -> np.ndarray:
    """A tiny PNG decoder for 8-bit RGB, non-interlaced images using filter 0 only."""
    assert data[:8] == PNG_SIGNATURE
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert pos == len(data), "data after IEND"
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (raw[:, 0] == 0).all(), "only filter type 0 is supported"
    return raw[:, 1:].reshape(height, width, 3)


@pytest.fixture(autouse=True)
def no_matplotlib(monkeypatch):
    """Force the numpy fallback, whether or not matplotlib is installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("matplotlib disabled for this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def colour_mask(img: np.ndarray, colour) -> np.ndarray:
    return (img == np.array(colour, dtype=np.uint8)).all(axis=2)


def bar_lengths(img: np.ndarray, colour) -> list[int]:
    """Per horizontal band of rows holding ``colour``: the most such pixels in one row, top to bottom."""
    counts = colour_mask(img, colour).sum(axis=1)
    bands, current = [], 0
    for c in counts:
        if c:
            current = max(current, int(c))
        elif current:
            bands.append(current)
            current = 0
    if current:
        bands.append(current)
    return bands


def test_write_png_round_trip():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    data = write_png(arr)
    assert data.startswith(PNG_SIGNATURE)
    np.testing.assert_array_equal(decode_png(data), arr)


def test_write_png_rejects_bad_shape():
    with pytest.raises(ValueError):
        write_png(np.zeros((4, 4), dtype=np.uint8))


def test_bar_plot_is_a_png_with_content():
    data = bar_plot(["resnet32x4 -> resnet8x4", "vgg13 -> vgg8"], [73.1, 70.2], [0.3, 0.5],
                    [73.6, 70.9], title="CIFAR-100 top-1 (%)")
    assert data.startswith(PNG_SIGNATURE)
    (width, height) = struct.unpack(">II", data[16:24])
    img = decode_png(data)
    assert img.shape == (height, width, 3)
    assert width > 300 and height > 100
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) >= 4
    assert colour_mask(img, LAST_COLOR).any() and colour_mask(img, BEST_COLOR).any()


def test_larger_values_give_longer_bars():
    img = decode_png(bar_plot(["high", "low"], [90.0, 50.0], [0.0, 0.0], [92.0, 55.0]))
    for colour, (hi_val, lo_val) in ((LAST_COLOR, (90.0, 50.0)), (BEST_COLOR, (92.0, 55.0))):
        bands = bar_lengths(img, colour)
        assert len(bands) == 3                # legend swatch, then one bar per row
        _, high, low = bands
        assert high > 2 * low > 0
        lo, hi = plot.axis_range([90.0, 50.0], [0.0, 0.0], [92.0, 55.0])
        expected = (hi_val - lo) / (lo_val - lo)
        assert math.isclose(high / low, expected, rel_tol=0.1)


def test_axis_range_and_ticks():
    lo, hi = plot.axis_range([73.1, 70.2], [0.3, 0.5], [73.6, 70.9])
    assert lo % 5 == 0 and 0 <= lo < 69.7 and hi > 73.6
    assert plot.axis_range([1.0], [0.0], [2.0])[0] == 0.0
    assert plot.axis_range([math.nan], [math.nan], [math.nan]) == (0.0, 100.0)
    ts = plot.ticks(lo, hi)
    assert 2 <= len(ts) <= 7 and all(lo <= t <= hi for t in ts)


def test_nan_values_are_skipped():
    nan = math.nan
    data = bar_plot(["a", "b", "c"], [nan, 60.0, 70.0], [0.2, nan, 1.0], [65.0, nan, nan])
    img = decode_png(data)
    assert len(bar_lengths(img, LAST_COLOR)) == 3     # legend + rows b and c
    assert len(bar_lengths(img, BEST_COLOR)) == 2     # legend + row a
    img = decode_png(bar_plot(["x"], [nan], [nan], [nan], title="all NaN"))
    assert img.shape[0] > 0


def test_long_labels_are_truncated_and_odd_chars_drawn():
    short = decode_png(bar_plot(["x" * 40], [50.0], [1.0], [55.0]))
    long = decode_png(bar_plot(["x" * 200], [50.0], [1.0], [55.0]))
    assert long.shape == short.shape
    img = decode_png(bar_plot(["é ± [a]_b=c(d)/e:f+g#h"], [50.0], [1.0], [55.0], title="weird \u2603 title"))
    assert img.shape[1] > 0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        bar_plot(["a", "b"], [1.0], [0.0], [2.0])
