"""Differences to a baseline cell, paired by seed, with a paired t-test (``akd report DIR --baseline CELL``).

Within a seed every cell of a grid or comparison starts from the same student weights and sees the same
batches, so the natural comparison is per seed: ``d_s = acc(cell, s) - acc(baseline, s)`` over the seeds
both finished.  The table gives the mean of ``d_s``, its sample std (ddof = 1), and the paired t-test of
``mean(d) = 0`` (``scipy.stats.ttest_rel``: ``t = mean(d) / (std(d) / sqrt(n))``, n - 1 degrees of
freedom, two-sided p).  With 3 seeds (2 degrees of freedom) only large differences reach p < 0.05.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from .errors import ConfigError, unknown

__all__ = ["METRICS", "paired_differences", "stats_markdown", "stats_file"]

METRICS = ("last_acc", "best_acc")


def paired_differences(df: pd.DataFrame, baseline: str, metric: str = "last_acc") -> pd.DataFrame:
    """One row per cell: ``cell, n`` (seeds paired with the baseline), ``mean`` (the cell's mean over those
    seeds), ``diff`` (mean paired difference, points), ``diff_std``, ``t``, ``p`` (NaN where n < 2 or the
    differences are all equal, and for the baseline itself)."""
    from scipy import stats

    if metric not in METRICS:
        raise unknown("metric", metric, METRICS)
    cells = [c for c in dict.fromkeys(df["cell"])]
    if baseline not in cells:
        raise unknown("baseline cell", baseline, cells)
    fin = df[df["status"] == "finished"].copy()
    fin["_v"] = pd.to_numeric(fin[metric], errors="coerce")
    per = {c: dict(zip(g["seed"].astype(int), g["_v"])) for c, g in fin.groupby("cell", sort=False)}
    base = per.get(baseline, {})
    if not base:
        raise ConfigError(f"baseline cell '{baseline}' has no finished run to compare with")
    rows = []
    for c in cells:
        if (df[df["cell"] == c]["status"] == "skipped").all():
            continue
        own = per.get(c, {})
        seeds = sorted(set(own) & set(base))
        d = [own[s] - base[s] for s in seeds]
        t = p = float("nan")
        if c != baseline and len(d) > 1:
            with_var = len(set(d)) > 1
            if with_var:
                res = stats.ttest_rel([own[s] for s in seeds], [base[s] for s in seeds])
                t, p = float(res.statistic), float(res.pvalue)
        rows.append({
            "cell": c, "n": len(seeds), "mean": sum(own[s] for s in seeds) / len(seeds) if seeds else float("nan"),
            "diff": sum(d) / len(d) if d else float("nan"),
            "diff_std": pd.Series(d, dtype=float).std(ddof=1) if len(d) > 1 else float("nan"), "t": t, "p": p,
        })
    return pd.DataFrame(rows)


def _f(v: float, fmt: str) -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, fmt)


def _p(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else (f"{v:.3f}" if v >= 0.001 else f"{v:.1e}")


def stats_markdown(table: pd.DataFrame, baseline: str, metric: str = "last_acc") -> str:
    what = {"last_acc": "last-epoch", "best_acc": "best-epoch"}[metric]
    lines = [f"Differences to `{baseline}` ({what} accuracy, paired by seed; paired t-test, two-sided)", "",
             "| cell | paired seeds | mean (%) | diff (points) | std of diff | t | p |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        if r["cell"] == baseline:
            lines.append(f"| {r['cell']} (baseline) | {r['n']} | {_f(r['mean'], '.2f')} | - | - | - | - |")
            continue
        lines.append(f"| {r['cell']} | {r['n']} | {_f(r['mean'], '.2f')} | {_f(r['diff'], '+.2f')} | {_f(r['diff_std'], '.2f')} | "
                     f"{_f(r['t'], '+.2f')} | {_p(r['p'])} |")
    lines += ["", "diff = mean over seeds of (cell - baseline) in the same seed (same initial weights and batches); "
              "t, p: paired t-test (scipy.stats.ttest_rel), n - 1 degrees of freedom; '-' where fewer than 2 seeds pair "
              "or every paired difference is equal."]
    return "\n".join(lines) + "\n"


def stats_file(directory: Path, baseline: str, metric: str = "last_acc") -> Path:
    """Where the table for ``baseline`` is written: ``<dir>/stats_vs_<baseline slug>[_best].md``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", baseline).strip("_") or "baseline"
    return Path(directory) / f"stats_vs_{slug}{'' if metric == 'last_acc' else '_best'}.md"
