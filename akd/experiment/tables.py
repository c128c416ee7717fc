"""Tables and plots of a grid's runs: one row per cell and seed (``results.csv``), mean ± std per cell
(``results.md``), ``results.png`` and ``curves.png`` (:mod:`akd.plot`), all written atomically; :func:`report`
rebuilds them from the run folders alone.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..engine.checkpoint import atomic_write_text
from ..engine.runs import RunDir
from .spec import Cell, Grid, read_grid_file


def _row(c: Cell, seed: int, d: Path, s: dict[str, Any]) -> dict[str, Any]:
    r = {"cell": c.name, **{k: str(v) for k, v in c.values.items()}, "seed": seed, "status": s.get("status", "?"),
         "last_acc": s.get("last_acc"), "best_acc": s.get("best_acc"), "best_epoch": s.get("best_epoch"),
         "teacher_acc": s.get("teacher_acc"), "time_s": s.get("time_s"), "shared_lanes": s.get("shared_lanes", 1),
         "images_per_s": s.get("images_per_s"),
         "init_digest": s.get("init_digest"), "data_digest": s.get("data_digest"), "run_dir": str(d), "reason": s.get("reason", ""),
         "run_dataset": s.get("dataset"), "run_teacher": s.get("teacher"), "run_student": s.get("student")}
    return r


def _frame(cells: list[Cell], seeds: list[int], rows: dict[tuple[str, int], dict[str, Any]]) -> pd.DataFrame:
    out = []
    for c in cells:
        if c.skipped:
            out.append({"cell": c.name, **{k: str(v) for k, v in c.values.items()}, "seed": None, "status": "skipped", "reason": c.skipped})
            continue
        for s in seeds:
            out.append(rows.get((c.name, s)) or {"cell": c.name, **{k: str(v) for k, v in c.values.items()}, "seed": s, "status": "pending"})
    return pd.DataFrame(out)


class LiveResults:
    """A running grid's rows: each finished run logged (with the grid's ETA) and the results files rewritten, so a
    grid stopped at any point leaves the tables of what it finished.

    ``already``: the folders of the runs finished before this process started (read back, not trained).  The ETA
    is the time per run trained here × the runs still to train; unknown (``?``) until one has been trained here.
    """

    def __init__(self, out: Path, grid: Grid, cells: list[Cell], total: int, log: Callable[[str], None],
                 already: set[str] | frozenset[str] = frozenset()):
        self.out, self.grid, self.cells, self.total, self.log = out, grid, cells, total, log
        self.already = already
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        self.trained = 0
        self.t0 = time.perf_counter()

    def record(self, c: Cell, seed: int, run_dir: Path, summ: dict[str, Any]) -> None:
        self.rows[(c.name, seed)] = _row(c, seed, run_dir, summ)
        self.trained += str(run_dir) not in self.already
        self.log(f"[{len(self.rows)}/{self.total}] {c.name} seed {seed}: {_outcome(summ)}  (ETA {self.eta()})")
        self.write()

    def eta(self) -> str:
        """Minutes left: runs read back from disk take no time and count neither in the pace nor in what is left."""
        left = self.total - len(self.already) - self.trained
        if left <= 0:
            return "0.0 min"
        if self.trained == 0:
            return "?"
        return f"{(time.perf_counter() - self.t0) / self.trained * left / 60:.1f} min"

    def write(self) -> pd.DataFrame:
        """results.csv/md/png and curves.png of the rows so far (runs not done yet: ``pending``); the frame."""
        df = _frame(self.cells, self.grid.seeds, self.rows)
        write_results(self.out, df, self.grid, title=self.grid.title)
        return df


def _outcome(summ: dict[str, Any]) -> str:
    st = summ.get("status")
    if st == "finished":
        return f"last {summ['last_acc']:.2f}% best {summ['best_acc']:.2f}%"
    return f"{st}: {summ.get('reason', '')}"


def _pm(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell: n finished seeds, mean ± std (sample std, ddof=1) of last and best accuracy, mean time."""
    fin = df[df["status"] == "finished"].copy()
    cells = list(dict.fromkeys(df["cell"]))
    out = []
    for c in cells:
        g = fin[fin["cell"] == c]
        allc = df[df["cell"] == c]
        n = len(g)
        last = pd.to_numeric(g["last_acc"]) if n else pd.Series(dtype=float)
        best = pd.to_numeric(g["best_acc"]) if n else pd.Series(dtype=float)
        out.append({
            "cell": c, "n": n, "of": int(allc["seed"].notna().sum()),
            "last_mean": last.mean() if n else float("nan"), "last_std": last.std(ddof=1) if n > 1 else 0.0,
            "best_mean": best.mean() if n else float("nan"), "best_std": best.std(ddof=1) if n > 1 else 0.0,
            "time_s": pd.to_numeric(g["time_s"]).mean() if n else float("nan"),
            "status": "skipped" if (allc["status"] == "skipped").all() else ("done" if n == len(allc) else "partial"),
        })
    return pd.DataFrame(out)


def markdown_table(df: pd.DataFrame, title: str = "") -> str:
    s = summarize(df)
    teacher = pd.to_numeric(df.get("teacher_acc", pd.Series(dtype=float)), errors="coerce").dropna()
    lines = []
    if title:
        lines += [f"# {title}", ""]
    if len(teacher):
        lines += [f"Teacher accuracy: {teacher.iloc[0]:.2f}%", ""]
    from ..published import published_for_cells

    pub = published_for_cells(df)  # cells whose (dataset, teacher, student, method) has a published accuracy
    extra = " published (%) | last − published |" if pub else ""
    lines += ["| cell | seeds | last acc (%) | best acc (%) | time / run (s) |" + extra,
              "|---|---|---|---|---|" + ("---|---|" if pub else "")]
    for _, r in s.iterrows():
        if r["status"] == "skipped":
            reason = df[df["cell"] == r["cell"]]["reason"].iloc[0]
            lines.append(f"| {r['cell']} | skipped | {reason} | | |" + (" | |" if pub else ""))
            continue
        t = "-" if math.isnan(r["time_s"]) else f"{r['time_s']:.2f}"
        p = pub.get(r["cell"])
        more = "" if not pub else (" | |" if p is None or r["n"] == 0 else f" {p['acc']:.2f} | {r['last_mean'] - p['acc']:+.2f} |")
        lines.append(f"| {r['cell']} | {r['n']}/{r['of']} | {_pm(r['last_mean'], r['last_std'], r['n'])} | "
                     f"{_pm(r['best_mean'], r['best_std'], r['n'])} | {t} |" + more)
    lines += ["", "mean ± sample std over seeds (ddof=1); 'last' = final epoch, 'best' = best epoch on the evaluation set."]
    lines += _time_note(df)
    if pub:
        sources = sorted({p["source"] for p in pub.values()})
        lines += ["'published': top-1 of the same teacher/student pair in the literature "
                  f"(experiments/<dataset>/published.toml): {'; '.join(sources)}."]
    return "\n".join(lines) + "\n"


def _time_note(df: pd.DataFrame) -> list[str]:
    """A note when the time column mixes runs trained alone and runs trained together (``akd grid`` shares batches
    and the teacher forward among the runs of a seed): each of those reports its share of the group's time."""
    fin = df[df["status"] == "finished"]
    sizes = sorted({int(v) for v in pd.to_numeric(fin.get("shared_lanes", pd.Series(dtype=float)), errors="coerce").dropna()})
    if len(sizes) < 2:
        return []
    return [f"'time / run': runs trained together on the same batches (one teacher forward per batch) report their share "
            f"of their group's time; groups here have {', '.join(map(str, sizes))} runs, so the times of cells trained in "
            "groups of different sizes do not compare."]


def write_results(out: Path, df: pd.DataFrame, grid: Grid | None = None, title: str | None = None,
                  baseline: str | None = None) -> None:
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    atomic_write_text(out / "results.md", markdown_table(df, title or f"Results: {out.name}"))
    write_plots(out, df, title=title or out.name, baseline=baseline)


def epoch_curves(df: pd.DataFrame) -> dict[str, list[list[float]]]:
    """Per cell, per run (seed) with a ``metrics.jsonl``: the evaluation accuracy of epochs 1, 2, … (finished,
    interrupted and failed runs alike: a run contributes the epochs it evaluated)."""
    curves: dict[str, list[list[float]]] = {}
    for _, r in df.iterrows():
        run_dir = r.get("run_dir")
        if not isinstance(run_dir, str) or not run_dir:
            continue
        acc: dict[int, float] = {}
        try:
            lines = RunDir(run_dir).metrics.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                rec = json.loads(line)
                acc[int(rec["epoch"])] = float(rec["test_top1"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a killed run
        if acc:
            curves.setdefault(str(r["cell"]), []).append([acc[e] for e in range(1, max(acc) + 1) if e in acc])
    return curves


def _eval_set(df: pd.DataFrame) -> str:
    """The evaluation set the runs report ("test", or "dev" with --dev), from the first readable summary."""
    for run_dir in df.get("run_dir", pd.Series(dtype=str)).dropna():
        summ = RunDir(str(run_dir)).read_summary()
        if isinstance(summ, dict):
            return str(summ.get("eval_set", "test"))
    return "test"


def write_plots(out: Path, df: pd.DataFrame, title: str = "", baseline: str | None = None) -> list[Path]:
    """``results.png`` (mean ± std per cell) and ``curves.png`` (accuracy per epoch, mean and ± std band over
    seeds) into ``out``, atomically; returns the files written (none before a run has finished an epoch)."""
    from ..engine.checkpoint import atomic_write_bytes
    from ..plot import curves_plot, results_plot

    written = []
    teacher = pd.to_numeric(df.get("teacher_acc", pd.Series(dtype=float)), errors="coerce").dropna()
    t_acc = float(teacher.iloc[0]) if len(teacher) else None
    s = summarize(df)
    s = s[s["n"] > 0]
    if len(s):
        png = results_plot(list(s["cell"]), list(s["last_mean"]), list(s["last_std"]), list(s["best_mean"]), list(s["best_std"]),
                           n=list(s["n"]), title=title, teacher_acc=t_acc, baseline=baseline)
        atomic_write_bytes(out / "results.png", png)
        written.append(out / "results.png")
    curves = epoch_curves(df)
    if curves:
        eval_set = _eval_set(df)
        atomic_write_bytes(out / "curves.png", curves_plot(curves, title=title, eval_set=eval_set, teacher_acc=t_acc))
        written.append(out / "curves.png")
    return written


def report(directory: str | Path, baseline: str | None = None, metric: str = "last_acc") -> pd.DataFrame:
    """Rebuild results.csv/md/png and curves.png of a grid or compare directory from its run directories.

    ``baseline``: a cell name; then also ``stats_vs_<cell>.md``, the differences to it paired by seed with a
    paired t-test (:mod:`akd.stats`), and the baseline drawn in results.png.  Only reads the runs.
    """
    d = Path(directory)
    grid = read_grid_file(d)
    cells = grid.cells()
    rows = {}
    for c in cells:
        if c.skipped:
            continue
        for s in grid.seeds:
            rd = d / "cells" / c.slug / f"seed{s}"
            summ = RunDir(rd).read_summary()
            if summ is None:
                continue
            rows[(c.name, s)] = _row(c, s, rd, summ)
    df = _frame(cells, grid.seeds, rows)
    table = None
    if baseline is not None:  # a bad name or metric is an error before anything is written
        from ..stats import paired_differences, stats_file, stats_markdown

        table = paired_differences(df, baseline, metric)
    write_results(d, df, grid, title=grid.title, baseline=baseline)
    if table is not None:
        atomic_write_text(stats_file(d, str(baseline), metric), stats_markdown(table, str(baseline), metric))
    return df
