"""The pictures of a grid or comparison, drawn with matplotlib (Agg, imported lazily), as PNG bytes.

* :func:`results_plot` -- ``results.png``: one row per cell, horizontal bars of the mean *last* and *best*
  accuracy over seeds with ± sample-std error bars (ddof = 1), the value written next to each bar, the
  teacher's and a baseline cell's accuracy as vertical lines.  The accuracy axis starts at a stated value
  (written under the axis: bars do not start at 0 %), chosen so every error bar is visible.
* :func:`curves_plot` -- ``curves.png``: evaluation accuracy per epoch (from each run's ``metrics.jsonl``),
  one line per cell (the mean over seeds) with a band of ± one sample std over seeds (ddof = 1).

``import akd.plot`` imports numpy only; matplotlib is imported by the functions (Agg canvas, no pyplot
global state, safe in worker processes and without a display).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["results_plot", "curves_plot", "axis_start", "band"]

LAST_COLOR = "#1f77b4"  # tab:blue
BEST_COLOR = "#ff7f0e"  # tab:orange
LABEL_WIDTH = 34        # cell labels wrap at this many characters


def _wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(str(label), LABEL_WIDTH, break_on_hyphens=False, break_long_words=True)) or str(label)


def axis_start(lows: Sequence[float]) -> float:
    """Where the accuracy axis starts: 2 points below the lowest ``mean - std``, floored to a multiple of 5, >= 0."""
    vals = [float(v) for v in lows if v is not None and math.isfinite(float(v))]
    if not vals:
        return 0.0
    return max(0.0, 5.0 * math.floor((min(vals) - 2.0) / 5.0))


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def results_plot(cells: Sequence[str], last_mean: Sequence[float], last_std: Sequence[float],
                 best_mean: Sequence[float], best_std: Sequence[float], *, n: Sequence[int] | None = None,
                 title: str = "", teacher_acc: float | None = None, baseline: str | None = None) -> bytes:
    """``results.png``: mean ± std of the last and best accuracy (%) per cell, top to bottom in the given order.

    ``n``: finished seeds per cell (shown in the label).  NaN means are drawn as no bar.  The x axis starts at
    :func:`axis_start` of every ``mean - std`` (stated under the axis) and ends past the largest ``mean + std``
    and the value labels; ``teacher_acc`` and the ``baseline`` cell's last-accuracy mean are dashed lines.
    """
    k = len(cells)
    lm, ls, bm, bs = (np.asarray(v, dtype=float).reshape(k) for v in (last_mean, last_std, best_mean, best_std))
    if k == 0:
        raise ValueError("results_plot needs at least one cell")
    ls, bs = np.nan_to_num(ls), np.nan_to_num(bs)
    lo = axis_start(list(lm - ls) + list(bm - bs))
    tops = [v for v in list(lm + ls) + list(bm + bs) + [teacher_acc or float("nan")] if math.isfinite(v)]
    top = max(tops) if tops else lo + 10.0
    hi = min(100.0, top + max(2.0, 0.22 * (top - lo)))  # room for the value labels
    hi = max(hi, lo + 5.0)
    labels = [_wrap(c) + (f"\n({int(n[i])} seed{'s' if int(n[i]) != 1 else ''})" if n is not None else "") for i, c in enumerate(cells)]
    lines_per_row = max(label.count("\n") + 1 for label in labels)
    fig = _figure(9.0, 1.6 + k * max(0.62, 0.3 * lines_per_row))
    ax = fig.add_subplot(111)
    y = np.arange(k)
    h = 0.38
    for off, mean, std, color, name in ((-h / 2, lm, ls, LAST_COLOR, "last epoch"), (h / 2, bm, bs, BEST_COLOR, "best epoch")):
        ok = np.isfinite(mean)
        ax.barh(y[ok] + off, mean[ok] - lo, h, left=lo, color=color, label=f"{name} (mean ± std over seeds)")
        ax.errorbar(mean[ok], y[ok] + off, xerr=std[ok], fmt="none", ecolor="black", elinewidth=1, capsize=3)
        for yi, m, s in zip(y[ok] + off, mean[ok], std[ok]):
            ax.text(min(m + s, hi) + 0.012 * (hi - lo), yi, f"{m:.2f} ± {s:.2f}", va="center", fontsize=8)
    if teacher_acc is not None and math.isfinite(teacher_acc) and lo <= teacher_acc <= hi:
        ax.axvline(teacher_acc, color="0.35", ls="--", lw=1, label=f"teacher {teacher_acc:.2f}%")
    if baseline is not None and baseline in list(cells):
        b = float(lm[list(cells).index(baseline)])
        if math.isfinite(b):
            ax.axvline(b, color="tab:red", ls=":", lw=1.2, label=f"baseline {baseline} (last) {b:.2f}%")
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(f"test accuracy (%); the axis starts at {lo:g} %" + (", not 0" if lo > 0 else ""))
    ax.grid(axis="x", color="0.88")
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.35 / max(k, 1)), ncol=2, fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=11)
    return _png(fig)


def band(runs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std, count) over runs of per-epoch values: epoch e (1-based) averages the runs that reached it;
    std is the sample std (ddof = 1; 0 where one run reached the epoch)."""
    length = max((len(r) for r in runs), default=0)
    mat = np.full((len(runs), length), np.nan)
    for i, r in enumerate(runs):
        mat[i, :len(r)] = np.asarray(r, dtype=float)
    count = np.isfinite(mat).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(mat, axis=0) if length else np.zeros(0)
        dev = np.where(count > 1, np.sqrt(np.nansum((mat - mean) ** 2, axis=0) / np.maximum(count - 1, 1)), 0.0)
    return np.arange(1, length + 1), mean, dev, count


def curves_plot(curves: Mapping[str, Sequence[Sequence[float]]], *, title: str = "", eval_set: str = "test",
                teacher_acc: float | None = None) -> bytes:
    """``curves.png``: ``curves[cell]`` = per seed, the evaluation accuracy (%) of epochs 1, 2, … .

    One line per cell (mean over the seeds that reached each epoch) with a band of ± one sample std; the
    legend gives the seeds per cell.  Cells without any epoch are left out.
    """
    items = [(c, runs) for c, runs in curves.items() if any(len(r) for r in runs)]
    if not items:
        raise ValueError("curves_plot needs at least one run with an evaluated epoch")
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(items) <= 10 else "tab20"]
    fig = _figure(9.0, 5.2)
    ax = fig.add_subplot(111)
    last_epoch = 1
    for i, (cell, runs) in enumerate(items):
        epochs, mean, dev, _ = band(runs)
        color = cmap(i % cmap.N)
        done = [r for r in runs if len(r)]
        ax.plot(epochs, mean, color=color, lw=1.6, marker="o" if len(epochs) <= 30 else None, ms=3,
                label=f"{_wrap(cell)} ({len(done)} seed{'s' if len(done) != 1 else ''})")
        if len(done) > 1:
            ax.fill_between(epochs, mean - dev, mean + dev, color=color, alpha=0.18, lw=0)
        last_epoch = max(last_epoch, int(epochs[-1]))
    if teacher_acc is not None and math.isfinite(teacher_acc):
        ax.axhline(teacher_acc, color="0.35", ls="--", lw=1, label=f"teacher {teacher_acc:.2f}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{eval_set} accuracy (%)")
    ax.set_xlim(0.8, last_epoch + 0.2)
    if last_epoch <= 20:
        ax.set_xticks(range(1, last_epoch + 1))
    ax.grid(color="0.9")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="mean over seeds, band ± 1 std", title_fontsize=8)
    if title:
        ax.set_title(title, fontsize=11)
    return _png(fig)

