"""Published accuracies beside akd's: ``experiments/<dataset>/published.toml`` (data, each number with its source).

Looked up in ``$AKD_PUBLISHED_DIR/<dataset>/published.toml``, then ``./experiments/<dataset>/published.toml`` (the
working directory), then the ``experiments/`` folder next to the akd package (a source checkout).  ``<dataset>`` is
the data set's name without parameters (``cifar100``).  Format::

    [sources]   key = "citation"
    [teachers]  model = { acc = 79.42, source = "crd" }
    [[pairs]]   teacher, student, teacher_acc = {acc, source}, student_acc = {acc, source},
                [pairs.methods] method = { acc = 73.33, source = "crd" }

Method ``ce`` (the plain student) is the pair's ``student_acc``.  A missing cell is ``None`` (never guessed).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError


def _dataset_key(dataset: str | None) -> str | None:
    if not dataset:
        return None
    from .registry import parse_spec

    try:
        return parse_spec(dataset, "dataset")[0]
    except ConfigError:
        return None


def published_path(dataset: str | None) -> Path | None:
    key = _dataset_key(dataset)
    if key is None:
        return None
    roots = [Path(os.environ["AKD_PUBLISHED_DIR"])] if os.environ.get("AKD_PUBLISHED_DIR") else []
    roots += [Path.cwd() / "experiments", Path(__file__).resolve().parents[1] / "experiments"]
    return next((r / key / "published.toml" for r in roots if (r / key / "published.toml").is_file()), None)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the published table ({e})") from None


def load_published(dataset: str | None) -> dict[str, Any] | None:
    p = published_path(dataset)
    return _load(str(p)) if p is not None else None


def _cell(entry: Any, table: Mapping[str, Any]) -> dict[str, Any] | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("acc"), (int, float)):
        return None
    src = entry.get("source", "")
    return {"acc": float(entry["acc"]), "source": table.get("sources", {}).get(src, src)}


def published_teacher_acc(dataset: str | None, model: str | None) -> dict[str, Any] | None:
    """``{"acc", "source"}`` of teacher ``model``'s published checkpoint on ``dataset``, or None."""
    table = load_published(dataset)
    if table is None or not model:
        return None
    return _cell(table.get("teachers", {}).get(model), table)


def published_cell(dataset: str | None, teacher: str | None, student: str | None, method: str | None) -> dict[str, Any] | None:
    """``{"acc", "source"}`` of ``method`` distilling ``teacher`` into ``student`` on ``dataset``, or None."""
    table = load_published(dataset)
    if table is None or not (teacher and student and method):
        return None
    for pair in table.get("pairs", []):
        if pair.get("teacher") == teacher and pair.get("student") == student:
            entry = pair.get("student_acc") if method == "ce" else pair.get("methods", {}).get(method)
            return _cell(entry, table)
    return None


def published_for_cells(df: Any) -> dict[str, dict[str, Any]]:
    """For a results frame of a compare/grid with a ``method`` axis: ``{cell: {"acc", "source"}}`` of the cells
    whose (dataset, teacher, student, method) is listed.  Empty when none is."""
    if "method" not in getattr(df, "columns", ()) or "run_teacher" not in df.columns:
        return {}
    out = {}
    teachers = df["run_teacher"].dropna().unique()  # a plain-student (ce) run has no teacher: the comparison's one
    common = teachers[0] if len(teachers) == 1 else None
    for cell, g in df[df["status"] == "finished"].groupby("cell", sort=False):
        r = g.iloc[0]
        vals = [r.get(k) for k in ("run_dataset", "run_teacher", "run_student", "method")]
        if vals[1] is None or (isinstance(vals[1], float) and math.isnan(vals[1])):
            vals[1] = common
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
            continue
        hit = published_cell(*vals)
        if hit is not None:
            out[cell] = hit
    return out
