"""The grid spec: a base config and named axes (from flags or a TOML file), crossed into :class:`Cell` s.

Axes may be the term parts ``affinity, norm, loss, source, weight, pre, redundant, unreliable, quantile`` (they build
one relational term, added to CE), ``method`` (a preset), ``ce`` (the CE term's loss spec, e.g. ``ce(virtual=True)``;
with ``method``, the preset's CE term) or any run-config key (``student``, ``lr``, ``epochs``...);
``seeds`` is the seed axis.  Unknown names and ill-typed values are errors; combinations the core refuses become
skipped cells with their reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..engine.config import FIELDS, RunConfig, config_from_dict
from ..errors import ConfigError, closest
from ..registry import split_top_level

TERM_AXES = ("affinity", "norm", "loss", "source", "weight", "pre", "redundant", "unreliable", "quantile")
SPECIAL_AXES = ("method", "seeds")
#: the grid keys (axes and [[cells]] entries) that are not run-config keys
OBJECTIVE_AXES = TERM_AXES + ("method", "ce")


def split_list(text: str) -> list[str]:
    """Split ``"gram,rbf(gamma=0.4,order=2),cosine"`` at top-level commas only (an empty last item dropped)."""
    out = [p.strip() for p in split_top_level(text)]
    return out[:-1] if out and not out[-1] else out


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")
    if len(s) > 80:
        s = s[:60] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return s


@dataclass
class Cell:
    values: dict[str, Any]
    config: RunConfig | None = None
    skipped: str | None = None
    label: str | None = None  # a [[cells]] entry's ``name``
    needs_teacher: bool = False  # the objective reads teacher outputs (set with ``config``)

    @property
    def name(self) -> str:
        parts = ([self.label] if self.label else []) + [f"{k}={v}" for k, v in self.values.items() if not (self.label and k in self.own)]
        return ",".join(parts) or "base"

    own: tuple = ()  # keys set by the labelled [[cells]] entry (shown by its label instead)

    @property
    def slug(self) -> str:
        return _slug(self.name)


def _check_axis_value(axis: str, value: Any, base: RunConfig) -> None:
    """Unknown names and ill-typed values are errors (exit 2), not skipped cells."""
    from .. import AFFINITIES, LOSSES, METHODS, NORMALIZATIONS
    from ..errors import unknown
    from ..objective import REPRESENTATIONS
    from ..pruning import REDUNDANT, UNRELIABLE

    if axis == "affinity":
        AFFINITIES.resolve(value)
    elif axis in ("norm", "pre"):
        if value not in (None, "none"):
            NORMALIZATIONS.resolve(value)
    elif axis == "loss":
        LOSSES.resolve(value)
    elif axis == "method":
        METHODS.resolve(value)
    elif axis == "ce":
        from ..objective import with_ce

        try:
            with_ce([], str(value))
        except ConfigError as e:
            raise ConfigError(f"grid axis 'ce': {e}") from None
    elif axis == "source" and value not in REPRESENTATIONS:
        raise unknown("representation", value, REPRESENTATIONS)
    elif axis == "redundant" and value not in REDUNDANT:
        raise unknown("redundant-edge pruning", value, REDUNDANT)
    elif axis == "unreliable" and value not in UNRELIABLE:
        raise unknown("unreliable-edge pruning", value, UNRELIABLE)
    elif axis not in OBJECTIVE_AXES:
        config_from_dict({axis: value}, base, where=f"grid axis '{axis}'")


@dataclass
class Grid:
    base: RunConfig
    axes: dict[str, list[Any]]
    seeds: list[int]
    ce_weight: float = 1.0
    base_term: dict[str, Any] = field(default_factory=dict)
    #: explicit cells (dicts of axis values), crossed with ``axes``; e.g. a one-factor-at-a-time ablation
    variants: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None

    def validate(self) -> "Grid":
        if not self.seeds:
            raise ConfigError("the seed list is empty; give e.g. --seeds 0,1,2")
        from ..objective import with_ce

        with_ce([], None, self.ce_weight)  # a negative CE weight: the one check of akd.objective.with_ce
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {','.join(map(str, self.seeds))} lists a seed twice")
        for i, v in enumerate(self.variants):
            if not isinstance(v, dict) or not v:
                raise ConfigError(f"grid cell {i + 1} must be a non-empty table of axis values")
            if "name" in v and not isinstance(v["name"], str):
                raise ConfigError(f"grid cell {i + 1}: name must be a string")
            for k, val in v.items():
                if k == "name":
                    continue
                if k in self.axes:
                    raise ConfigError(f"grid cell {i + 1} sets '{k}', which is also an axis")
                if k not in OBJECTIVE_AXES and k.replace("-", "_") not in FIELDS:
                    near = closest(k, list(OBJECTIVE_AXES) + list(FIELDS))
                    raise ConfigError(f"grid cell {i + 1}: unknown key '{k}'" + (f" (did you mean '{near}'?)" if near else ""))
                _check_axis_value(k, val, self.base)
        names = [json.dumps({k: x for k, x in v.items() if k != "name"}, sort_keys=True, default=str) for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError("the grid lists the same cell twice")
        for k, vals in self.axes.items():
            if k not in OBJECTIVE_AXES and k.replace("-", "_") not in FIELDS:
                near = closest(k, list(OBJECTIVE_AXES) + list(FIELDS))
                raise ConfigError(f"unknown grid axis '{k}'" + (f" (did you mean '{near}'?)" if near else ""))
            if k in ("seed", "seeds"):
                raise ConfigError("give seeds with --seeds (or 'seeds' in the grid file), not as an axis")
            if not vals:
                raise ConfigError(f"grid axis '{k}' has no values")
            seen = set()
            for v in vals:
                _check_axis_value(k, v, self.base)
                key = json.dumps(v, sort_keys=True, default=str)
                if key in seen:
                    raise ConfigError(f"grid axis '{k}' lists {v!r} twice")
                seen.add(key)
        return self

    def cells(self) -> list[Cell]:
        keys = list(self.axes)
        out = []
        combos = list(itertools.product(*(self.axes[k] for k in keys))) if keys else [()]
        for variant, combo in itertools.product(self.variants or [{}], combos):
            variant = dict(variant)
            label = variant.pop("name", None)
            values = {**variant, **dict(zip(keys, combo))}
            cell = Cell(values, label=label, own=tuple(variant))
            try:
                others = {k: v for k, v in values.items() if k not in OBJECTIVE_AXES}
                cfg = config_from_dict(others, self.base, where=f"grid cell {cell.name}")
                self._set_objective(cfg, values, cell.name)
                cell.needs_teacher = _needs_teacher(cfg.objective)
                cfg.validate()
                cell.config = cfg
            except ConfigError as e:
                cell.skipped = str(e)
            out.append(cell)
        return out

    def _set_objective(self, cfg: RunConfig, values: dict[str, Any], name: str) -> None:
        """The cell's objective: the method's terms or CE (``ce_weight``, loss ``ce``), plus the relational term of
        the grid's [term] and the cell's term keys; the CE term's loss set by ``ce``.  A cell with none of these
        keeps the base config's objective."""
        from ..objective import term_list, with_ce

        has_term = any(k in values for k in TERM_AXES) or bool(self.base_term)
        if not ("method" in values or has_term or "ce" in values):
            return
        terms: list[Any] = term_list(values["method"])[0] if "method" in values else with_ce([], None, self.ce_weight)
        if has_term:
            term = {**self.base_term, **{k: v for k, v in values.items() if k in TERM_AXES}}
            if "loss" not in term:
                raise ConfigError("a term axis needs a loss (--loss)")
            terms.append(term)
        if "ce" in values:
            terms = with_ce(terms, str(values["ce"]))
        if "method" in values and not has_term and "ce" not in values:
            cfg.objective = values["method"]
        else:
            cfg.objective = {"terms": terms, "name": name}


def _needs_teacher(objective: Any) -> bool:
    from ..objective import build_objective

    return build_objective(objective).needs_teacher


def grid_from_file(path: str | Path, base: RunConfig | None = None) -> Grid:
    """A TOML grid: ``[base]`` (run-config keys, or ``config = "file.toml"``), ``[axes]`` lists, ``seeds``."""
    from ..engine.config import load_config, tomllib

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read grid file {p}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    valid = ("base", "axes", "cells", "seeds", "ce_weight", "term", "title")
    unknown_keys = [k for k in data if k not in valid]
    if unknown_keys:
        raise ConfigError(f"{p}: unknown key '{unknown_keys[0]}'; valid keys: {', '.join(valid)}")
    base_d = dict(data.get("base", {}))
    cfg = base or RunConfig()
    if "config" in base_d:
        cfg = load_config(p.parent / base_d.pop("config"), cfg)
    cfg = config_from_dict(base_d, cfg, where=str(p))
    axes = data.get("axes", {})
    if not isinstance(axes, dict) or any(not isinstance(v, list) for v in axes.values()):
        raise ConfigError(f"{p}: [axes] must map axis names to lists of values")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{p}: seeds must be a list of integers")
    cells = data.get("cells", [])
    if not isinstance(cells, list):
        raise ConfigError(f"{p}: [[cells]] must be an array of tables")
    return Grid(cfg, dict(axes), seeds, float(data.get("ce_weight", 1.0)), dict(data.get("term", {})),
                [dict(c) for c in cells], data.get("title"))


# ------------------------------------------------------------------------------------------
# grid.json: the grid a folder holds (``akd report`` rebuilds its cells from it)
# ------------------------------------------------------------------------------------------
#: the keys of grid.json that define the cells (a change means another grid in the same folder)
CELL_KEYS = ("axes", "base", "ce_weight", "base_term", "variants")


def write_grid_file(grid: Grid, out: Path, log: Callable[[str], None]) -> None:
    """``<out>/grid.json``; a note when the folder held another grid (its runs whose config is unchanged are kept)."""
    from ..engine.checkpoint import atomic_write_text

    spec = {"axes": grid.axes, "seeds": grid.seeds, "base": grid.base.to_dict(), "ce_weight": grid.ce_weight,
            "base_term": grid.base_term, "variants": grid.variants, "title": grid.title}
    old = out / "grid.json"
    if old.exists():
        try:
            prev = json.loads(old.read_text())
        except ValueError:
            prev = None
        if prev and {k: prev.get(k) for k in CELL_KEYS} != json.loads(json.dumps({k: spec[k] for k in CELL_KEYS}, default=str)):
            log(f"note: {out} held another grid; runs whose config is unchanged are kept")
    # not write_json: its sorted keys would reorder the axes (and cell values), and cell names and
    # folders depend on that order (akd report rebuilds them from this file)
    atomic_write_text(old, json.dumps(spec, indent=2, default=str) + "\n")


def read_grid_file(d: Path) -> Grid:
    """The grid of a grid or compare folder, from its grid.json (a ConfigError when there is none or it is damaged)."""
    spec_path = d / "grid.json"
    if not spec_path.exists():
        raise ConfigError(f"{d} is not a grid or compare directory (no grid.json)")
    try:
        spec = json.loads(spec_path.read_text())
        base = config_from_dict(spec["base"], where=str(spec_path))
        axes = _axes_in_order(d, spec["axes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{spec_path} is damaged ({type(e).__name__}: {e}); re-run the grid to rewrite it") from None
    return Grid(base, axes, spec["seeds"], spec.get("ce_weight", 1.0), spec.get("base_term", {}), spec.get("variants", []),
                spec.get("title"))


def _axes_in_order(d: Path, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The axes in the order the grid ran them (cell names and folders depend on it).

    grid.json keeps that order; one written with sorted keys (by older versions) is matched
    against the cell folders that exist.
    """
    def hits(order: tuple[str, ...]) -> int:
        cand = {k: axes[k] for k in order}
        return sum((d / "cells" / Cell(dict(zip(cand, combo))).slug).is_dir() for combo in itertools.product(*cand.values()))

    if not axes or hits(tuple(axes)) or len(axes) > 6:
        return dict(axes)
    best = max(itertools.permutations(axes), key=hits)
    return {k: axes[k] for k in best}
