"""Horizontal grouped bar charts of accuracies, as PNG bytes.

:func:`bar_plot` draws one row per label with two bars, the *last* accuracy
(mean with a +/- std error bar) and the *best* accuracy, both in percent.  It
renders with matplotlib (Agg, imported lazily) when that is installed and
otherwise with a small pure-numpy renderer: an RGB ``uint8`` canvas, a built-in
5x7 bitmap font, and :func:`write_png`, a minimal PNG encoder (zlib + struct).
NaN values are skipped: no bar, no error bar.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

__all__ = ["bar_plot", "write_png"]

MAX_LABEL = 40
LAST_COLOR = (31, 119, 180)   # matplotlib "tab:blue"
BEST_COLOR = (255, 127, 14)   # matplotlib "tab:orange"
ERR_COLOR = (20, 20, 20)
TEXT_COLOR = (0, 0, 0)
GRID_COLOR = (220, 220, 220)
BG_COLOR = (255, 255, 255)

# 5x7 glyphs: 7 rows of 5 bits (bit 4 = leftmost pixel) as 14 hex digits.
# Lowercase letters are drawn with the uppercase glyphs; unknown chars as a box.
_FONT = {
    " ": "00000000000000", "!": "04040404040004", '"': "0A0A0000000000", "#": "0A0A1F0A1F0A0A",
    "$": "040F140E051E04", "%": "18190204081303", "&": "0C12140815120D", "'": "04040000000000",
    "(": "02040808080402", ")": "08040202020408", "*": "0004150E150400", "+": "0004041F040400",
    ",": "000000000C0408", "-": "0000001F000000", ".": "00000000000C0C", "/": "00010204081000",
    "0": "0E11131519110E", "1": "040C040404040E", "2": "0E11010204081F",
    "3": "1F02040201110E", "4": "02060A121F0202", "5": "1F101E0101110E",
    "6": "0608101E11110E", "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C",
    ":": "000C0C000C0C00", ";": "000C0C000C0408", "<": "02040810080402", "=": "00001F001F0000",
    ">": "08040201020408", "?": "0E110102040004", "@": "0E11010D15150E", "A": "0E1111111F1111",
    "B": "1E11111E11111E", "C": "0E11101010110E", "D": "1C12111111121C", "E": "1F10101E10101F",
    "F": "1F10101E101010", "G": "0E11101711110F", "H": "1111111F111111", "I": "0E04040404040E",
    "J": "0702020202120C", "K": "11121418141211", "L": "1010101010101F", "M": "111B1515111111",
    "N": "11111915131111", "O": "0E11111111110E", "P": "1E11111E101010", "Q": "0E11111115120D",
    "R": "1E11111E141211", "S": "0F10100E01011E", "T": "1F040404040404", "U": "1111111111110E",
    "V": "11111111110A04", "W": "1111111515150A", "X": "11110A040A1111", "Y": "1111110A040404",
    "Z": "1F01020408101F", "[": "0E08080808080E", "\\": "00100804020100", "]": "0E02020202020E",
    "^": "040A1100000000", "_": "0000000000001F", "`": "08040000000000", "{": "02040408040402",
    "|": "04040404040404", "}": "08040402040408", "~": "00000815020000", "\u00b1": "04041F0404001F",
}
_BOX = "1F11111111111F"
_GLYPHS: dict[str, np.ndarray] = {}


def _glyph(ch: str) -> np.ndarray:
    """The 7x5 boolean bitmap of one character (cached)."""
    key = ch.upper() if ch.islower() and ch.upper() in _FONT else ch
    if key not in _GLYPHS:
        rows = bytes.fromhex(_FONT.get(key, _BOX))
        _GLYPHS[key] = np.array([[(r >> (4 - i)) & 1 for i in range(5)] for r in rows], dtype=bool)
    return _GLYPHS[key]


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` drawn with the bitmap font."""
    return max(0, 6 * len(text) - 1) * scale, 7 * scale


def draw_text(img: np.ndarray, x: int, y: int, text: str, color=TEXT_COLOR, scale: int = 1) -> None:
    """Draw ``text`` with its top-left corner at (x, y), clipped to ``img``."""
    h, w = img.shape[:2]
    block = np.ones((scale, scale), dtype=bool)
    for i, ch in enumerate(text):
        mask = np.kron(_glyph(ch), block)
        gx, gy = x + 6 * scale * i, y
        x0, y0 = max(gx, 0), max(gy, 0)
        x1, y1 = min(gx + mask.shape[1], w), min(gy + mask.shape[0], h)
        if x1 <= x0 or y1 <= y0:
            continue
        img[y0:y1, x0:x1][mask[y0 - gy:y1 - gy, x0 - gx:x1 - gx]] = color


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color) -> None:
    """Fill the rectangle [x0, x1) x [y0, y1), clipped to ``img``."""
    h, w = img.shape[:2]
    xa, xb = max(int(round(min(x0, x1))), 0), min(int(round(max(x0, x1))), w)
    ya, yb = max(int(round(min(y0, y1))), 0), min(int(round(max(y0, y1))), h)
    if xb > xa and yb > ya:
        img[ya:yb, xa:xb] = color


def write_png(array: np.ndarray) -> bytes:
    """Encode an ``HxWx3`` ``uint8`` RGB array as PNG bytes (8-bit truecolour, filter 0)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    raw = np.hstack([np.zeros((h, 1), dtype=np.uint8), arr.reshape(h, w * 3)]).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _truncate(label: str) -> str:
    """Shorten a label to at most :data:`MAX_LABEL` characters."""
    label = str(label)
    return label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 3] + "..."


def axis_range(last_mean, last_std, best_mean) -> tuple[float, float]:
    """The x range: min - margin floored to a multiple of 5 (>= 0) to max + margin."""
    lm, ls, bm = (np.asarray(v, dtype=float) for v in (last_mean, last_std, best_mean))
    ls = np.where(np.isfinite(ls), ls, 0.0)
    vals = np.concatenate([lm - ls, lm + ls, bm])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 100.0
    vmin, vmax = float(vals.min()), float(vals.max())
    margin = max(2.0, 0.1 * (vmax - vmin))
    lo = max(0.0, 5.0 * math.floor((vmin - margin) / 5.0))
    return lo, max(vmax + margin, lo + 5.0)


def ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """A few round tick positions inside [lo, hi]."""
    span = hi - lo
    step = next((s * 10 ** e for e in range(-2, 6) for s in (1, 2, 2.5, 5)
                 if span / (s * 10 ** e) <= target), span)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 6) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:g}"


def _bar_plot_mpl(labels, lm, ls, bm, title, lo, hi) -> bytes:
    """Render with matplotlib (Agg canvas, no pyplot global state)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(labels)
    fig = Figure(figsize=(9, 1.2 + 0.45 * max(n, 1)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    y, h = np.arange(n), 0.38
    ok_l, ok_b = np.isfinite(lm), np.isfinite(bm)
    last_rgb, best_rgb = (tuple(c / 255 for c in rgb) for rgb in (LAST_COLOR, BEST_COLOR))
    ax.barh(y[ok_l] - h / 2, lm[ok_l] - lo, h, left=lo, color=last_rgb, label="last (mean \u00b1 std)")
    ax.barh(y[ok_b] + h / 2, bm[ok_b] - lo, h, left=lo, color=best_rgb, label="best")
    ok_e = ok_l & np.isfinite(ls)
    if ok_e.any():
        ax.errorbar(lm[ok_e], y[ok_e] - h / 2, xerr=ls[ok_e], fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_yticks(y, labels)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(lo, hi)
    ax.set_xticks(ticks(lo, hi))
    ax.set_xlabel("accuracy (%)")
    ax.grid(axis="x", color="0.85")
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _bar_plot_numpy(labels, lm, ls, bm, title, lo, hi) -> bytes:
    """Render with the built-in numpy rasteriser and PNG encoder."""
    s, pad, bar_h, row_h, plot_w = 2, 12, 12, 36, 600
    n = len(labels)
    label_w = max([text_size(t, s)[0] for t in labels] + [0])
    tick_list = ticks(lo, hi)
    legend = [(LAST_COLOR, "last (mean \u00b1 std)"), (BEST_COLOR, "best")]
    x0 = pad + label_w + pad
    x1 = x0 + plot_w
    width = max(x1 + 3 * pad, text_size(title, s)[0] + 2 * pad)
    y_title = pad
    y_legend = y_title + (text_size(title, s)[1] + pad if title else 0)
    y0 = y_legend + 7 * s + pad
    y1 = y0 + row_h * max(n, 1)
    height = y1 + 6 + 7 * s + pad
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BG_COLOR

    def px(v: float) -> float:
        return x0 + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    if title:
        draw_text(img, (width - text_size(title, s)[0]) // 2, y_title, title, scale=s)
    lx = x0
    for color, text in legend:
        _rect(img, lx, y_legend, lx + 7 * s, y_legend + 7 * s, color)
        draw_text(img, lx + 7 * s + 6, y_legend, text, scale=s)
        lx += 7 * s + 6 + text_size(text, s)[0] + 3 * pad
    for t in tick_list:
        tx = int(round(px(t)))
        _rect(img, tx, y0, tx + 1, y1, GRID_COLOR)
        _rect(img, tx, y1, tx + 1, y1 + 4, TEXT_COLOR)
        tw = text_size(_fmt(t), s)[0]
        draw_text(img, min(max(tx - tw // 2, 0), width - tw), y1 + 6, _fmt(t), scale=s)
    for i, label in enumerate(labels):
        top = y0 + i * row_h + (row_h - 2 * bar_h) // 2
        draw_text(img, x0 - pad - text_size(label, s)[0], top + bar_h - 7 * s // 2, label, scale=s)
        if np.isfinite(lm[i]):
            _rect(img, x0, top, px(lm[i]), top + bar_h, LAST_COLOR)
            if np.isfinite(ls[i]) and ls[i] > 0:
                ea, eb, cy = px(lm[i] - ls[i]), px(lm[i] + ls[i]), top + bar_h // 2
                _rect(img, ea, cy, eb + 1, cy + 1, ERR_COLOR)
                for ex in (ea, eb):
                    _rect(img, ex, top + 2, ex + 1, top + bar_h - 2, ERR_COLOR)
        if np.isfinite(bm[i]):
            _rect(img, x0, top + bar_h, px(bm[i]), top + 2 * bar_h, BEST_COLOR)
    _rect(img, x0, y0, x0 + 1, y1, TEXT_COLOR)       # y axis
    _rect(img, x0, y1, x1 + 1, y1 + 1, TEXT_COLOR)   # x axis
    return write_png(img)


def bar_plot(labels: list[str], last_mean: list[float], last_std: list[float],
             best_mean: list[float], title: str = "") -> bytes:
    """A horizontal grouped bar chart of accuracies (in %) as PNG bytes.

    One row per label (top to bottom in the given order), with a "last" bar
    (mean, error bar +/- std) and a "best" bar.  The x axis runs from
    ``min - margin`` (floored to a multiple of 5, at least 0) to ``max + margin``.
    Labels are truncated to 40 characters; NaN values are skipped.  Uses
    matplotlib when importable, else the pure-numpy renderer.
    """
    n = len(labels)
    if not (len(last_mean) == len(last_std) == len(best_mean) == n):
        raise ValueError("labels, last_mean, last_std and best_mean must have the same length")
    lm, ls, bm = (np.asarray(v, dtype=float).reshape(n) for v in (last_mean, last_std, best_mean))
    names = [_truncate(t) for t in labels]
    lo, hi = axis_range(lm, ls, bm)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return _bar_plot_numpy(names, lm, ls, bm, str(title), lo, hi)
    return _bar_plot_mpl(names, lm, ls, bm, str(title), lo, hi)
