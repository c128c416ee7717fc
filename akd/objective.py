"""Declarative objectives: terms of (pre →) affinity → normalisation → loss, summed with weights.

A *term* is a dict::

    {"source": "logits", "affinity": "virtual-relation", "norm": "zs", "loss": "mse",
     "weight": 1.0, "pre": None, "redundant": "none", "unreliable": "none", "quantile": 0.9,
     "name": None}

``affinity``/``norm``/``loss``/``pre`` are registry specs (name, ``"name(k=v)"`` or dict).
An *objective* is an ``nn.Module`` built from a list of terms, a preset name (``"rkd"``), a
``{"terms": [...]}`` / ``{"method": ...}`` dict (TOML), or a triple ``"affinity/norm/loss"``.
Everything is validated at build time; calling it never re-parses anything::

    obj = build_objective("rkd")   # CE on logits + RKD's distance and angle terms on pooled features
    losses = obj({"logits": z_s, "pooled": f_s}, {"logits": z_t, "pooled": f_t}, targets=y)
    losses["total"]        # weighted sum; each term also under its own name (weighted)
    vrm = build_objective("vrm")   # reads vrm.views virtual views: rows [real; virtual], pass batch_size=B
    vrm(student_out, teacher_out, y, batch_size=B)

Representations (``source``): ``logits`` [N, C], ``pooled`` [N, D], ``map`` [N, C, H, W]
(flattened to [N, C·H·W] before the affinity).  When the objective reads virtual views
(``obj.views = k > 0``) every representation holds the real view first and then the k
virtual views, N = (1+k)·B, and the call must say B (``batch_size=``; it is never guessed from N);
terms whose affinity reads no views use the first B rows only.
Teacher relations are computed without gradient.  Relations are computed in fp32 with
autocast disabled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .affinity import AFFINITIES, Affinity, Nodes, edge_gram
from .errors import ConfigError, closest, unknown
from .losses import LOSSES, MatchLoss
from .normalization import NORMALIZATIONS, Normalization
from .pruning import (BY_DISTANCE, REDUNDANT, UNRELIABLE, UNRELIABLE_GRAPHS, candidate_index, discrepancy_mask,
                      joint_entropy_mask, redundant_mask, threshold_mask)
from .registry import format_spec, parse_spec
from .schedules import SCHEDULES, WeightSchedule

REPRESENTATIONS = ("logits", "pooled", "map")
TERM_KEYS = ("name", "source", "affinity", "norm", "loss", "weight", "pre", "redundant", "unreliable", "quantile", "delta",
             "unreliable_graphs", "schedule")
PAIRWISE_KINDS = {"sample", "class"}


def _spec_str(spec: Any, family: str) -> str:
    name, params = parse_spec(spec, family)
    return format_spec(name, params)


class Term(nn.Module):
    """One weighted term: ``weight · loss(norm(affinity(pre(x_s))), norm(affinity(pre(x_t))), mask)``."""

    def __init__(self, cfg: Mapping[str, Any], index: int = 0):
        super().__init__()
        where = f"term {index}" + (f" ('{cfg['name']}')" if cfg.get("name") else "")
        bad = [k for k in cfg if k not in TERM_KEYS]
        if bad:
            near = closest(bad[0], TERM_KEYS)
            hint = f" (did you mean '{near}'?)" if near else ""
            raise ConfigError(f"{where}: unknown key '{bad[0]}'{hint}; valid keys: {', '.join(TERM_KEYS)}")
        if "loss" not in cfg:
            raise ConfigError(f"{where}: a term needs a 'loss' (one of {', '.join(LOSSES.names())})")
        self.loss: MatchLoss = LOSSES.build(cfg["loss"])
        default_aff = "identity" if self.loss.instance else None
        aff_spec = cfg.get("affinity", default_aff)
        if aff_spec is None:
            raise ConfigError(f"{where}: a relational term needs an 'affinity' (one of {', '.join(AFFINITIES.names())})")
        self.affinity: Affinity = AFFINITIES.build(aff_spec)
        self.norm: Normalization = NORMALIZATIONS.build(cfg.get("norm", "none"))
        pre = cfg.get("pre")
        self.pre: Normalization | None = None if pre in (None, "none") else NORMALIZATIONS.build(pre)
        self.source = cfg.get("source", "logits")
        if self.source not in REPRESENTATIONS:
            raise unknown("representation", self.source, REPRESENTATIONS)
        try:
            self.weight = float(cfg.get("weight", 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: weight={cfg.get('weight')!r} is not a number") from None
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ConfigError(f"{where}: weight={self.weight} must be a finite number >= 0")
        self.redundant = cfg.get("redundant", "none")
        self.unreliable = cfg.get("unreliable", "none")
        if self.redundant not in REDUNDANT:
            raise unknown("redundant-edge pruning", self.redundant, REDUNDANT)
        if self.unreliable not in UNRELIABLE:
            raise unknown("unreliable-edge pruning", self.unreliable, UNRELIABLE)
        q = cfg.get("quantile", 0.9)
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 1.0:
            raise ConfigError(f"{where}: quantile={q!r} must be a number in (0, 1]")
        self.quantile = float(q)
        delta = cfg.get("delta", 1.0)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not (0.0 < delta and math.isfinite(delta)):
            raise ConfigError(f"{where}: delta={delta!r} must be a finite number > 0")
        self.delta = float(delta)
        self.unreliable_graphs = cfg.get("unreliable_graphs", "sample")
        if self.unreliable_graphs not in UNRELIABLE_GRAPHS:
            raise unknown("unreliable_graphs", self.unreliable_graphs, UNRELIABLE_GRAPHS)
        # weight schedule: factor(epoch) on the weight, set by the engine each epoch (1 until set_epoch is called)
        self.schedule: WeightSchedule = SCHEDULES.build(cfg.get("schedule", "constant"))
        self.factor = 1.0

        aff_name = parse_spec(aff_spec, "affinity")[0]
        norm_name = parse_spec(cfg.get("norm", "none"), "normalization")[0]
        loss_name = parse_spec(cfg["loss"], "loss")[0]
        self.spec = {
            "source": self.source,
            "affinity": _spec_str(aff_spec, "affinity"),
            "norm": _spec_str(cfg.get("norm", "none"), "normalization"),
            "loss": _spec_str(cfg["loss"], "loss"),
            "weight": self.weight,
        }
        if self.pre is not None:
            self.spec["pre"] = _spec_str(pre, "normalization")
        if self.redundant != "none" or self.unreliable != "none":
            self.spec.update(redundant=self.redundant, unreliable=self.unreliable, quantile=self.quantile)
        if self.unreliable == "threshold":
            self.spec["delta"] = self.delta
        if self.unreliable_graphs != "sample":
            self.spec["unreliable_graphs"] = self.unreliable_graphs
        if not self.schedule.constant:
            self.spec["schedule"] = _spec_str(cfg["schedule"], "schedule")
        self.name = str(cfg.get("name") or (loss_name if self.loss.instance else f"{aff_name}/{norm_name}/{loss_name}"))
        self.spec["name"] = self.name
        self._check(where, aff_name, norm_name, loss_name)
        self._masks: dict[tuple, tuple[Tensor | None, Tensor | None]] = {}

    # -- build-time validation -------------------------------------------------------------
    def _check(self, where: str, aff: str, norm: str, loss: str) -> None:
        combo = f"{where} ({aff} / {norm} / {loss})"
        if self.loss.instance:
            if aff != "identity" or norm != "none":
                raise ConfigError(
                    f"{combo}: '{loss}' is an instance term on raw logits; use affinity 'identity' and norm 'none'"
                )
            if self.pre is not None and (self.pre.probabilities or self.pre.requires_nonnegative):
                raise ConfigError(
                    f"{combo}: '{loss}' reads logits; pre '{self.spec['pre']}' does not produce logits (use pre 'zs', or none)"
                )
            if self.source != "logits":
                raise ConfigError(f"{combo}: '{loss}' reads logits, not '{self.source}'")
        nonneg = self.affinity.nonnegative and (self.pre is None or self.affinity.kind != "instance")
        if self.norm.requires_nonnegative and not nonneg:
            raise ConfigError(
                f"{combo}: normalisation '{norm}' needs non-negative relations but '{aff}' can be negative "
                f"(non-negative affinities: {', '.join(_nonnegative_affinities())})"
            )
        if self.loss.needs_probabilities and not self.norm.probabilities:
            raise ConfigError(
                f"{combo}: '{loss}' compares probability rows; '{norm}' does not produce them (use norm 'softmax', or 'l1' on a non-negative affinity)"
            )
        if self.redundant != "none" or self.unreliable != "none":
            if not (self.affinity.graph_kinds & PAIRWISE_KINDS):
                raise ConfigError(f"{combo}: edge pruning needs a pairwise graph; '{aff}' has none")
            if not self.loss.elementwise and not getattr(self.affinity, "edge_vectors", False):
                raise ConfigError(f"{combo}: row-wise loss '{loss}' cannot be masked per entry of a matrix relation")
            if self.redundant in ("cross-view", "both") and self.affinity.views == 0:
                raise ConfigError(f"{combo}: redundant='{self.redundant}' keeps only real-virtual edges but the affinity reads no virtual views")
            if self.unreliable == "joint-entropy" and "sample" not in self.affinity.graph_kinds:
                raise ConfigError(f"{combo}: unreliable='{self.unreliable}' applies to inter-sample graphs only")
            if self.unreliable == "joint-entropy" and self.unreliable_graphs == "all":
                raise ConfigError(f"{combo}: unreliable='joint-entropy' is defined by the nodes' predictions and prunes "
                                  "inter-sample graphs only; use unreliable_graphs='sample' or unreliable='discrepancy'")
            if self.unreliable in BY_DISTANCE and not getattr(self.affinity, "edge_vectors", False):
                raise ConfigError(f"{combo}: unreliable='{self.unreliable}' ranks edges by the distance between the "
                                  f"matched edge vectors; '{aff}' has no edge vectors (use edge, class-edge or virtual-relation)")
            if self.unreliable in BY_DISTANCE and self.unreliable_graphs == "sample" and "sample" not in self.affinity.graph_kinds:
                raise ConfigError(f"{combo}: unreliable='{self.unreliable}' prunes inter-sample graphs and '{aff}' has none; "
                                  "set unreliable_graphs='all' to prune its inter-class graph")
        if self.loss.needs_edge_vectors and not getattr(self.affinity, "edge_vectors", False):
            raise ConfigError(f"{combo}: '{self.spec['loss']}' compares whole edge vectors; '{aff}' has none "
                              "(use edge, class-edge or virtual-relation)")

    # -- properties the engine reads -------------------------------------------------------
    @property
    def views(self) -> int:
        return self.affinity.views

    @property
    def uses_teacher(self) -> bool:
        return self.loss.uses_teacher and self.weight > 0

    def sources(self) -> set[str]:
        s = {self.source}
        if self.unreliable == "joint-entropy":
            s.add("logits")
        return s

    # -- forward ---------------------------------------------------------------------------
    def _prep(self, x: Tensor, n: int) -> Tensor:
        x = x[:n]
        if x.is_inference():
            x = x.clone()
        # relations in fp32 (bf16/fp16 autocast outputs are upcast); fp64 representations stay fp64
        return (x if x.dtype == torch.float64 else x.float()).flatten(1)

    def _fixed(self, kind: str, size: int, nodes: Nodes, device) -> tuple[Tensor | None, Tensor | None]:
        """(redundant mask, candidate edge indices of the distance rules) of a graph layout, computed once."""
        key = (kind, size, nodes, str(device))
        if key not in self._masks:
            red = redundant_mask(kind, size, nodes, self.redundant, device)
            cand = candidate_index(red, size, device) if self.unreliable == "discrepancy" else None
            self._masks[key] = (red, cand)
        return self._masks[key]

    def _mask(self, kind: str, size: int, nodes: Nodes, device, student: Mapping[str, Tensor],
              sq: Tensor | None = None) -> Tensor | None:
        """Kept pairs of one graph: the fixed redundant mask ∧ this step's unreliable rule (module :mod:`akd.pruning`).

        ``sq``: the detached squared distances between the matched normalised edges (distance rules only)."""
        mask, cand = self._fixed(kind, size, nodes, device)
        keep = None
        prunes = self.unreliable != "none" and (kind == "sample" or self.unreliable_graphs == "all")
        if prunes and self.unreliable == "joint-entropy":
            keep = joint_entropy_mask(student["logits"][:size], self.quantile)
        elif prunes and self.unreliable == "discrepancy":
            assert sq is not None and cand is not None  # distance rules are given the distances (_graph_value)
            keep = discrepancy_mask(sq, cand, self.quantile)
        elif prunes and self.unreliable == "threshold":
            assert sq is not None
            keep = threshold_mask(sq, self.delta)
        return keep if mask is None else (mask if keep is None else mask & keep)

    def _graph_value(self, gs: Any, gt: Any, sub: Nodes, student: Mapping[str, Tensor]) -> Tensor:
        """The loss of one student graph against the teacher's: in closed form for edge graphs where the loss is a
        function of each edge's distance (:mod:`akd.affinity._edge_gram`), on the materialised relations otherwise."""
        by_distance = self.unreliable in BY_DISTANCE
        if gs.rel is None and edge_gram.supports(self.norm, self.loss):
            sq = edge_gram.pair_sq(gs.nodes, gt.nodes, self.norm)
            mask = self._mask(gs.kind, gs.size, sub, sq.device, student, sq.detach() if by_distance else None)
            value = self.loss.edge_reduce(sq, mask, gs.nodes.shape[1])
            assert value is not None  # edge_gram.supports(...) holds only for losses with a closed form
            return value.to(gs.nodes.dtype)
        s_rel = self.norm(gs.relation)
        with torch.no_grad():
            t_rel = self.norm(gt.relation)
            dist = (s_rel.detach() - t_rel).pow(2).sum(-1) if by_distance else None
        return self.loss(s_rel, t_rel, self._mask(gs.kind, gs.size, sub, s_rel.device, student, dist))

    def forward(self, student: Mapping[str, Tensor], teacher: Mapping[str, Tensor] | None, targets: Tensor | None,
                nodes: Nodes, out: dict[str, Tensor]) -> Tensor:
        # instance losses read the real rows, or every view's rows when they say so (ce(virtual=True))
        n = nodes.n if getattr(self.loss, "reads_views", False) else nodes.batch * (1 + self.views)
        with torch.autocast(student[self.source].device.type, enabled=False):
            xs = self._prep(student[self.source], n)
            xt = self._prep(teacher[self.source], n).detach() if teacher is not None and self.loss.uses_teacher else None
            if self.loss.instance:
                y = targets[: nodes.batch].repeat(n // nodes.batch) if targets is not None else None
                if self.pre is not None:  # logit standardisation (pre = "zs", Sun et al., CVPR 2024)
                    xs, xt = self.pre(xs), (self.pre(xt) if xt is not None else None)
                value = self.loss(xs, xt, None, y)
            else:
                sub = Nodes(nodes.batch, self.views)
                assert xt is not None  # relational losses read the teacher (Objective.forward checked it is given)
                if self.pre is not None:
                    xs = self.pre(xs)
                    xt = self.pre(xt)
                s_graphs = self.affinity.graphs(xs, sub)
                with torch.no_grad():
                    t_graphs = self.affinity.graphs(xt, sub)
                value = xs.new_zeros(())
                for gs, gt in zip(s_graphs, t_graphs):
                    part = self._graph_value(gs, gt, sub, student)
                    if len(s_graphs) > 1:
                        out[f"{self.name}/{gs.name}"] = (self.weight * gs.weight * part).detach()
                    value = value + gs.weight * part
        return (self.weight * self.factor) * value


class Objective(nn.Module):
    """A weighted sum of :class:`Term` s; ``forward`` returns ``{"total": …, term name: weighted value, …}``."""

    def __init__(self, terms: Sequence[Term], name: str = "custom"):
        super().__init__()
        if not terms:
            raise ConfigError("an objective needs at least one term")
        names = [t.name for t in terms]
        used: set[str] = set()
        for t in terms:  # make names unique: repeated names get #1, #2, … (skipping names already taken)
            if names.count(t.name) > 1 or t.name in used:
                k, base = 1, t.name
                while f"{base}#{k}" in used or f"{base}#{k}" in names:
                    k += 1
                t.name = f"{base}#{k}"
            used.add(t.name)
        self.terms = nn.ModuleList(terms)
        self.name = name
        vs = {t.views for t in terms if t.views}
        self.views = max(vs) if vs else 0
        for t in terms:
            if getattr(t.loss, "reads_views", False) and not self.views:
                raise ConfigError(f"term '{t.name}' reads the virtual views (virtual=True), but no term of objective "
                                  f"'{name}' draws any (an affinity with views >= 1, e.g. virtual-relation); drop virtual=True")

    def _each(self) -> list[Term]:
        """The terms, typed (iterating the ModuleList yields plain modules to a type checker)."""
        return [t for t in self.terms if isinstance(t, Term)]

    @property
    def needs_teacher(self) -> bool:
        return any(t.uses_teacher for t in self._each())

    @property
    def needs_targets(self) -> bool:
        return any(t.loss.needs_targets for t in self._each())

    def student_sources(self) -> set[str]:
        return set().union(*(t.sources() for t in self._each()))

    def teacher_sources(self) -> set[str]:
        return {t.source for t in self._each() if t.uses_teacher}

    def set_epoch(self, epoch: int) -> None:
        """Apply each term's weight schedule for (0-based) ``epoch``: a pure function of it (resumable)."""
        for t in self._each():
            t.factor = float(t.schedule(epoch))

    def describe(self) -> list[dict[str, Any]]:
        """The resolved terms (for run configs and tables)."""
        return [dict(t.spec, name=t.name) for t in self._each()]

    def forward(self, student: Mapping[str, Tensor], teacher: Mapping[str, Tensor] | None = None,
                targets: Tensor | None = None, *, batch_size: int | None = None) -> dict[str, Tensor]:
        """The weighted terms and their sum (``"total"``).

        ``student``/``teacher``: representations by name (``logits``, ``pooled``, ``map``).  ``batch_size``: the
        number of real images B; required when the objective reads virtual views (``self.views = k > 0``, rows
        ``[real; virtual 1; ...; virtual k]``, see :func:`akd.virtual_views`), optional otherwise (all rows).
        """
        for s in self.student_sources():
            if s not in student:
                raise ConfigError(f"objective '{self.name}' reads student representation '{s}', which was not provided (got {sorted(student)})")
        if self.needs_teacher:
            if teacher is None:
                raise ConfigError(f"objective '{self.name}' needs teacher representations")
            for s in self.teacher_sources():
                if s not in teacher:
                    raise ConfigError(f"objective '{self.name}' reads teacher representation '{s}', which was not provided (got {sorted(teacher)})")
        if self.needs_targets and targets is None:
            raise ConfigError(f"objective '{self.name}' needs targets (labels)")
        n = next(iter(student.values())).shape[0]
        if batch_size is None:
            if self.views:  # never guess how many rows are real images: a plain batch would be split silently
                raise ConfigError(
                    f"objective '{self.name}' reads {self.views} virtual view(s) per image: pass batch_size= (the number of "
                    f"real images B; rows are [real; virtual 1; ...], {1 + self.views}*B in all, e.g. from akd.virtual_views)")
            batch_size = n
        elif n < batch_size * (1 + self.views):
            raise ConfigError(f"objective needs {(1 + self.views)} views x {batch_size} rows, got {n}")
        nodes = Nodes(batch_size, self.views)
        out: dict[str, Tensor] = {}
        for term in self._each():
            out[term.name] = term(student, teacher, targets, nodes, out)
        out["total"] = sum((out[t.name] for t in self._each()[1:]), out[self._each()[0].name])
        return out


def _nonnegative_affinities() -> list[str]:
    res = []
    for e in AFFINITIES.entries():
        try:
            if e.obj().nonnegative:
                res.append(e.name)
        except Exception:  # pragma: no cover
            pass
    return res + ["cosine(shift=True)"]


def is_ce_term(term: Mapping[str, Any]) -> bool:
    """A term that is the plain cross-entropy with the labels (loss ``ce``, no affinity)."""
    return "affinity" not in term and parse_spec(str(term.get("loss", "")), "loss")[0] == "ce"


def with_ce(terms: list[dict[str, Any]], loss: str | None = None, weight: float | None = None) -> list[dict[str, Any]]:
    """``terms`` with their CE term set (first in the list): its loss spec ``loss`` (a ``ce`` spec, e.g.
    ``ce(virtual=True)`` for CE on the virtual views too, or ``ce(label_smoothing=0.1)``) and its ``weight`` (0 drops
    it); what is not given keeps the existing CE term's value (default: ``ce``, weight 1).  The one place that decides
    a CE term for ``akd run --ce/--ce-weight`` and for a grid's ``ce``/``ce_weight``."""
    if loss is not None:
        name, _ = parse_spec(loss, "loss")
        if name != "ce":
            raise ConfigError(f"ce loss {loss!r}: must be a spec of loss 'ce' (e.g. ce(virtual=True), ce(label_smoothing=0.1))",
                              cli=f"--ce {loss!r}: must be a spec of loss 'ce' (e.g. ce(virtual=True), ce(label_smoothing=0.1))")
        LOSSES.build(loss)  # unknown or bad parameters: one line now
    if weight is not None and not weight >= 0:
        raise ConfigError(f"ce weight {weight:g}: must be >= 0 (0 drops the CE term)",
                          cli=f"--ce-weight {weight:g}: must be >= 0 (0 drops the CE term)")
    old = next((t for t in terms if is_ce_term(t)), None)
    rest = [dict(t) for t in terms if not is_ce_term(t)]
    w = weight if weight is not None else (old.get("weight", 1.0) if old else 1.0)
    if w == 0:
        return rest
    ce = {**(old or {}), "loss": loss if loss is not None else (old or {}).get("loss", "ce"), "weight": w}
    return [ce] + rest


def _is_triple(spec: Any) -> bool:
    return isinstance(spec, str) and spec.count("/") == 2


def term_list(spec: Any) -> tuple[list[dict[str, Any]], str]:
    """Normalise any objective spec to (list of term dicts, name)."""
    from .methods import METHODS

    if isinstance(spec, str):
        if _is_triple(spec):
            aff, norm, loss = (p.strip() for p in spec.split("/"))
            return [{"affinity": aff, "norm": norm, "loss": loss}], spec
        name, params = parse_spec(spec, "method")
        return METHODS.build(spec), name
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "terms" in spec or "method" in spec:
            extra = [k for k in spec if k not in ("terms", "method", "name")]
            if extra:
                raise ConfigError(f"objective: unknown key '{extra[0]}'; valid keys: terms, method, name")
            terms: list[dict[str, Any]] = []
            name = spec.get("name")
            if "method" in spec:
                terms, name0 = term_list(spec["method"])
                name = name or name0
            extra_terms = spec.get("terms", [])
            if not isinstance(extra_terms, (list, tuple)):
                raise ConfigError("objective: 'terms' must be a list of term tables")
            return terms + [dict(t) for t in extra_terms], str(name or "custom")
        return [spec], "custom"
    if isinstance(spec, (list, tuple)):
        if len(spec) == 3 and all(isinstance(p, str) for p in spec) and not any(p in _all_method_names() for p in spec):
            return [{"affinity": spec[0], "norm": spec[1], "loss": spec[2]}], "/".join(spec)
        out = []
        for t in spec:
            if not isinstance(t, Mapping):
                raise ConfigError(f"objective: each term must be a table/dict, got {t!r}")
            out.append(dict(t))
        return out, "custom"
    raise ConfigError(f"cannot build an objective from {spec!r}; give a method name, a list of terms or a dict")


def _all_method_names() -> set[str]:
    from .methods import METHODS

    return set(METHODS.names())


def build_objective(spec: Any) -> Objective:
    """Build and validate an :class:`Objective` (see the module docstring for accepted specs)."""
    if isinstance(spec, Objective):
        return spec
    terms, name = term_list(spec)
    if not terms:
        raise ConfigError("an objective needs at least one term")
    return Objective([Term(copy.deepcopy(t), i) for i, t in enumerate(terms)], name=name)
