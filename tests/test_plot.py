"""akd.plot (results.png, curves.png), akd.stats (paired differences to a baseline) and `akd report --baseline`."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from akd import ConfigError
from akd.plot import axis_start, band, curves_plot, results_plot
from akd.stats import paired_differences, stats_markdown

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT / "benchmarks" / "results" / "fmnist_compare"
PNG = b"\x89PNG\r\n\x1a\n"


def _image(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    assert png[:8] == PNG
    return imread(io.BytesIO(png), format="png")


def test_import_akd_is_light():
    code = "import sys, akd, akd.plot, akd.stats; print(sorted(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "[]"


def test_axis_start_is_stated_and_below_every_error_bar():
    assert axis_start([69.36 - 0.69, 65.38 - 3.68, 74.99]) == 55.0  # 61.7 - 2 = 59.7 -> 55
    assert axis_start([3.0]) == 0.0 and axis_start([float("nan")]) == 0.0 and axis_start([]) == 0.0


def test_results_plot_draws_every_cell_and_grows_with_cells():
    small = _image(results_plot(["a", "b"], [70.0, 72.0], [1.0, 0.5], [71.0, 72.5], [1.0, 0.4], n=[3, 3], title="t"))
    big = _image(results_plot([f"method=cell{i}" for i in range(8)], [60.0 + i for i in range(8)], [1.0] * 8,
                              [61.0 + i for i in range(8)], [0.5] * 8, n=[3] * 8, teacher_acc=80.0, baseline="method=cell0"))
    assert big.shape[0] > small.shape[0] > 100 and small.shape[1] > 500
    # both bar colours are drawn (tab:blue for last, tab:orange for best)
    rgb = (big[..., :3] * 255).round().astype(int)
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(rgb - colour).sum(axis=2) < 6).sum() > 500, colour


def test_results_plot_skips_nan_cells_and_rejects_empty():
    assert results_plot(["a", "b"], [70.0, float("nan")], [1.0, float("nan")], [70.0, float("nan")], [0.0, 0.0])[:8] == PNG
    with pytest.raises(ValueError):
        results_plot([], [], [], [], [])


def test_band_mean_and_sample_std_over_seeds():
    epochs, mean, std, count = band([[50.0, 60.0, 70.0], [52.0, 64.0], [54.0, 62.0, 72.0]])
    assert list(epochs) == [1, 2, 3] and list(count) == [3, 3, 2]
    assert mean.tolist() == pytest.approx([52.0, 62.0, 71.0])
    assert std.tolist() == pytest.approx([2.0, 2.0, math.sqrt(2.0)])
    _, _, std1, _ = band([[50.0, 60.0]])
    assert std1.tolist() == [0.0, 0.0]


def test_curves_plot_png():
    png = curves_plot({"ce": [[50.0, 60.0], [52.0, 61.0]], "vrm": [[55.0, 70.0], [57.0, 72.0]], "empty": [[]]}, title="x")
    assert _image(png).shape[1] > 500
    with pytest.raises(ValueError):
        curves_plot({"a": [[]]})


def _frame(values: dict[str, list[float | None]]) -> pd.DataFrame:
    rows = []
    for cell, accs in values.items():
        for seed, a in enumerate(accs):
            rows.append({"cell": cell, "seed": seed, "status": "finished" if a is not None else "failed", "last_acc": a, "best_acc": a})
    return pd.DataFrame(rows)


def test_paired_differences_match_a_hand_computed_paired_t():
    df = _frame({"ce": [69.85, 68.60, 69.62], "vrm": [75.48, 74.34, 75.15], "kd": [72.0, None, 71.0]})
    t = paired_differences(df, "ce").set_index("cell")
    d = np.array([75.48 - 69.85, 74.34 - 68.60, 75.15 - 69.62])
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert t.loc["vrm", "n"] == 3 and t.loc["vrm", "diff"] == pytest.approx(d.mean())
    assert t.loc["vrm", "t"] == pytest.approx(t_hand)
    from scipy import stats

    assert t.loc["vrm", "p"] == pytest.approx(2 * stats.t.sf(abs(t_hand), 2))
    assert t.loc["kd", "n"] == 2  # seed 1 of kd failed: only seeds 0 and 2 pair
    assert t.loc["kd", "diff"] == pytest.approx(((72.0 - 69.85) + (71.0 - 69.62)) / 2)
    assert math.isnan(t.loc["ce", "t"])
    text = stats_markdown(t.reset_index(), "ce")
    assert "| ce (baseline) | 3 | 69.36 | - | - | - | - |" in text
    assert f"| vrm | 3 | 74.99 | +{d.mean():.2f} |" in text


def test_paired_differences_bad_baseline_and_metric():
    df = _frame({"method=ce": [1.0, 2.0], "method=kd": [2.0, 3.0]})
    with pytest.raises(ConfigError, match=r"^unknown baseline cell 'method=c' \(did you mean 'method=ce'\?\); valid choices: method=ce, method=kd$"):
        paired_differences(df, "method=c")
    with pytest.raises(ConfigError, match=r"^unknown metric 'top5'"):
        paired_differences(df, "method=ce", "top5")


@pytest.fixture
def compare_copy(tmp_path):
    """A copy of the committed comparison (finished runs), with run dirs pointing into the copy."""
    if not (COMPARE / "grid.json").is_file():
        pytest.skip("benchmarks/results/fmnist_compare is not in this checkout")
    d = tmp_path / "fc"
    shutil.copytree(COMPARE / "cells", d / "cells")
    shutil.copy(COMPARE / "grid.json", d / "grid.json")
    return d


def test_report_writes_both_pictures_and_the_baseline_table(compare_copy, monkeypatch):
    monkeypatch.chdir(compare_copy.parent)
    code, out, err = run_cli("report", "fc", "--baseline", "method=ce")
    assert code == 0, err
    for f in ("results.csv", "results.md", "results.png", "curves.png", "stats_vs_method_ce.md"):
        assert (compare_copy / f).is_file(), f
    assert (compare_copy / "results.png").read_bytes()[:8] == PNG and (compare_copy / "curves.png").read_bytes()[:8] == PNG
    stats_md = (compare_copy / "stats_vs_method_ce.md").read_text()
    assert stats_md in out
    vrm = next(line for line in stats_md.splitlines() if line.startswith("| method=vrm-zs-edge |"))
    assert vrm.startswith("| method=vrm-zs-edge | 3 | 74.99 | +5.63 |"), vrm
    assert "results: fc/results.csv, fc/results.md, fc/results.png, fc/curves.png" in out


def test_report_refuses_bad_baseline_and_lone_metric_before_writing(compare_copy, monkeypatch):
    monkeypatch.chdir(compare_copy.parent)
    code, out, err = run_cli("report", "fc", "--baseline", "method=cee")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: unknown baseline cell 'method=cee' (did you mean 'method=ce'?); valid choices: method=cc, method=ce, method=kd, ")
    code, out, err = run_cli("report", "fc", "--metric", "best_acc")
    assert code == 2 and err == ("error: --metric chooses the accuracy of the --baseline comparison; "
                                 "add --baseline CELL or drop --metric\n")
    assert not (compare_copy / "results.png").exists() and not (compare_copy / "curves.png").exists()


def test_curves_come_from_metrics_jsonl(compare_copy):
    from akd.experiment import epoch_curves, report

    df = report(compare_copy)
    curves = epoch_curves(df)
    assert set(curves) == {f"method={m}" for m in ("ce", "kd", "rkd", "cc", "sp", "pkt", "vrm-zs-edge")}
    first = [json.loads(x)["test_top1"] for x in (compare_copy / "cells" / "method=ce" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert curves["method=ce"][0] == first and len(first) == 6
