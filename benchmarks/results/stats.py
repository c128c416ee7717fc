"""Differences to a reference cell with Welch's t statistic, from a results.csv (no hand-edited numbers).

    python benchmarks/results/stats.py benchmarks/results/fmnist_compare "method=ce"
    python benchmarks/results/stats.py benchmarks/results/fmnist_vrm_ablation "vrm (preset)"

Writes <dir>/stats_vs_<ref>.md.  |t| > ~2.8 (df ≈ 4) is a difference beyond the seed noise at the 5 % level;
with 3 seeds per cell this test has little power, so small true differences will not show.
"""

import math
import sys
from pathlib import Path

import pandas as pd


def main(directory: str, ref: str, metric: str = "last_acc") -> str:
    d = Path(directory)
    df = pd.read_csv(d / "results.csv")
    df = df[df["status"] == "finished"]
    groups = {c: g[metric].astype(float) for c, g in df.groupby("cell", sort=False)}
    r = groups[ref]
    lines = [f"# Differences to `{ref}` ({metric}, mean over seeds; Welch's t)", "",
             "| cell | mean (%) | diff (points) | Welch t | beyond noise (|t| > 2.8) |", "|---|---|---|---|---|"]
    for c, g in groups.items():
        diff = g.mean() - r.mean()
        se = math.sqrt(g.var(ddof=1) / len(g) + r.var(ddof=1) / len(r)) if c != ref else float("nan")
        t = diff / se if se and se == se and se > 0 else float("nan")
        beyond = "-" if c == ref else ("yes" if abs(t) > 2.8 else "no")
        lines.append(f"| {c} | {g.mean():.2f} | {diff:+.2f} | {t:+.1f} | {beyond} |")
    text = "\n".join(lines) + "\n"
    slug = "".join(ch if ch.isalnum() else "_" for ch in ref).strip("_")
    (d / f"stats_vs_{slug}.md").write_text(text)
    return text


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
