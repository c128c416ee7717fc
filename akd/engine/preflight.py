"""What can be checked before any work: the memory of one training step, and the models' taps.

Every check here runs before a teacher is trained or a file is written, so a run that cannot work
fails in one line at once instead of after an hour of teacher training (or never: a step whose
tensors do not fit can swap for hours).

**Memory of one step** (:func:`estimate_step`) is estimated from shapes alone, without allocating:
the student and teacher are built on PyTorch's ``meta`` device and run on a meta batch of one image,
which gives every layer's output size and the taps' dimensions; relation graphs are sized from each
term's affinity on meta tensors.  With ``R = (1 + views) · batch`` rows per step and 4 bytes per
number (fp32; bf16 activations only make it smaller):

* input batch: R · image size · 4 · 3 (uint8 copy, float views, augmentation temporaries);
* student: R · (sum of all layer outputs per image) · 4 · 2 (saved for backward, and their gradients);
* teacher (no gradient): R · (largest layer output per image) · 4 · 2;
* each graph of each relational term: materialised relations (e.g. RKD-A's N³ angles, an edge graph's
  N²·D) · 4 · 6 (student, teacher, normalised copies, difference, gradient); an edge graph matched in
  closed form (``mse`` after ``none``/``l2``/``zs``) · N² · 8 · 12 (float64 Gram matrices and their
  temporaries).

The estimate is meant to catch runs that are off by orders of magnitude, not to predict a peak to a
few percent.  It is refused when it exceeds the limit: ``--max-memory GB`` when given, otherwise 90 % of
the memory available now (CPU: ``MemAvailable``; CUDA: the free memory of the device).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..objective import Objective, Term

FP32 = 4
FP64 = 8
GiB = 1024**3
#: multipliers of the model above (see the module doc)
INPUT_COPIES, STUDENT_COPIES, TEACHER_COPIES, RELATION_COPIES, CLOSED_FORM_COPIES = 3, 2, 2, 6, 12
#: share of the available memory a step may use without --max-memory
DEFAULT_SHARE = 0.9


@dataclass
class ModelProfile:
    """Shapes of one model, from a meta forward of one image: taps' dims and activation sizes per image."""

    taps: dict[str, tuple[int, ...]]
    activations: int  # sum of every layer's output numel (per image)
    largest: int  # the largest single layer output (per image)

    def dim(self, source: str) -> int:
        return math.prod(self.taps[source])


def model_profile(spec: Any, num_classes: int, in_shape: tuple[int, ...]) -> ModelProfile:
    """Build ``spec`` on the meta device and run one meta image through it (no memory, no weights)."""
    from ..models import create_model

    with torch.device("meta"):
        model = create_model(spec, num_classes=num_classes, in_channels=in_shape[0])
    sizes: list[int] = []

    def hook(_mod, _inp, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel())

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            out = model(torch.empty(1, *in_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    taps = {k: tuple(v.shape[1:]) for k, v in out.items()} if isinstance(out, dict) else {"logits": tuple(out.shape[1:])}
    declared = getattr(model, "taps", None)
    if declared is not None:
        taps = {k: v for k, v in taps.items() if k in declared}
    return ModelProfile(taps, sum(sizes), max(sizes, default=0))


def _term_graph_bytes(term: Term, dim: int, batch: int) -> list[tuple[str, int]]:
    """Bytes of the graphs one relational term builds (per side and its temporaries), sized on meta tensors."""
    from ..affinity import Nodes, edge_gram

    nodes = Nodes(batch, term.views)
    x = torch.empty(nodes.n, dim, device="meta")
    out = []
    for g in term.affinity.graphs(x, nodes):
        label = f"term '{term.name}'" + (f" graph '{g.name}'" if g.name else "")
        if g.rel is None and edge_gram.supports(term.norm, term.loss):
            n = g.nodes.shape[0]
            out.append((f"{label} ({n}x{n} closed form)", n * n * FP64 * CLOSED_FORM_COPIES))
        else:
            shape = tuple(g.relation.shape)
            out.append((f"{label} ({'x'.join(map(str, shape))} relation)", math.prod(shape) * FP32 * RELATION_COPIES))
    return out


@dataclass
class StepEstimate:
    """Estimated bytes of one training step, by part."""

    parts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(b for _, b in self.parts)

    def largest(self) -> tuple[str, int]:
        return max(self.parts, key=lambda p: p[1])


def estimate_step(cfg: Any, objective: Objective, num_classes: int, in_shape: tuple[int, ...],
                  student: ModelProfile | None = None, teacher: ModelProfile | None = None) -> StepEstimate:
    """The memory of one training step of ``cfg`` (see the module doc for the model)."""
    rows = cfg.batch_size * (1 + objective.views)
    student = student or model_profile(cfg.student, num_classes, in_shape)
    est = StepEstimate()
    est.parts.append((f"input batch ({rows} images incl. virtual views)", rows * math.prod(in_shape) * FP32 * INPUT_COPIES))
    est.parts.append((f"student activations ({rows} images)", rows * student.activations * FP32 * STUDENT_COPIES))
    if teacher is not None:
        est.parts.append((f"teacher activations ({rows} images)", rows * teacher.largest * FP32 * TEACHER_COPIES))
    for term in objective.terms:
        if term.loss.instance or term.source not in student.taps:
            continue
        est.parts.extend(_term_graph_bytes(term, student.dim(term.source), cfg.batch_size))
    return est


def available_memory(device: torch.device) -> int:
    """Bytes available now on ``device`` (CPU: MemAvailable, else physical memory; CUDA: free memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 62


def memory_limit(cfg: Any, device: torch.device) -> tuple[int, str]:
    """The limit a step's estimate must stay under, and how it was set (for the error message)."""
    if cfg.max_memory is not None:
        return int(cfg.max_memory * GiB), f"--max-memory {cfg.max_memory:g}"
    avail = available_memory(device)
    return int(DEFAULT_SHARE * avail), f"{DEFAULT_SHARE:.0%} of the {avail / GiB:.1f} GiB available on {device.type}"


def gib(n: int) -> str:
    return f"{n / GiB:.3g} GiB" if n < 1e4 * GiB else f"{n / GiB:.3e} GiB"


def check_step_memory(cfg: Any, objective: Objective, num_classes: int, in_shape: tuple[int, ...],
                      device: torch.device, teacher_spec: Any = None) -> StepEstimate:
    """Refuse (ConfigError) a step whose estimated memory exceeds the limit; return the estimate."""
    student = model_profile(cfg.student, num_classes, in_shape)
    teacher = model_profile(teacher_spec, num_classes, in_shape) if teacher_spec is not None else None
    est = estimate_step(cfg, objective, num_classes, in_shape, student, teacher)
    limit, why = memory_limit(cfg, device)
    if est.total > limit:
        name, size = est.largest()
        raise ConfigError(f"one training step needs an estimated {gib(est.total)} (largest: {name}, {gib(size)}), over the "
                          f"limit of {gib(limit)} ({why}); lower --batch-size or the views, or raise the limit with --max-memory GB")
    return est


def check_teacher_taps(teacher_spec: Any, objective: Objective, num_classes: int, in_shape: tuple[int, ...]) -> None:
    """The teacher architecture provides what the objective reads from it, checked before it is trained."""
    prof = model_profile(teacher_spec, num_classes, in_shape)
    missing = sorted(objective.teacher_sources() - set(prof.taps))
    if missing:
        raise ConfigError(f"teacher model '{teacher_spec}' does not provide representation(s) {', '.join(missing)} "
                          f"(it has: {', '.join(sorted(prof.taps))})")


def check_data_and_teacher(cfg: Any, ds: Any = None) -> Any:
    """Every check that needs the data but no training; returns the data set (loaded unless given).

    The batch size against the training set, a teacher checkpoint's fit, the teacher architecture's taps
    (before it is trained), and the memory estimate of one step (:mod:`akd.engine.preflight`).
    """
    from ..data import load_dataset
    from ..objective import build_objective
    from .device import resolve_device
    from .teacher_files import load_teacher_file

    objective = build_objective(cfg.objective)
    if ds is None:
        ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, dev=cfg.dev, seed=0)
    n_train = ds.train_x.shape[0]
    if cfg.batch_size > n_train:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the training set ({n_train} images)")
    if objective.views and cfg.batch_size < 2:
        raise ConfigError("--batch-size must be >= 2 for relational objectives")
    teacher_spec = None
    if objective.needs_teacher:
        if cfg.teacher_ckpt:
            _, info = load_teacher_file(cfg.teacher_ckpt, cfg.teacher, ds.num_classes, ds.in_shape, cfg.cache_dir)
            teacher_spec = info["teacher"]
        elif cfg.teacher:
            teacher_spec = cfg.teacher
            check_teacher_taps(teacher_spec, objective, ds.num_classes, ds.in_shape)
    check_step_memory(cfg, objective, ds.num_classes, ds.in_shape, resolve_device(cfg.device), teacher_spec)
    return ds


# --------------------------------------------------------------------------------------------
# --check: what a run would do, from the same checks, without training or writing anything
# --------------------------------------------------------------------------------------------
def teacher_plan(cfg: Any) -> str:
    """How the teacher of ``cfg`` would be obtained (reads the cache; trains nothing)."""
    from ..objective import build_objective
    from .teacher import teacher_config, teacher_dir

    if not build_objective(cfg.objective).needs_teacher:
        return "none needed"
    if cfg.teacher_ckpt:
        return f"checkpoint {cfg.teacher_ckpt}"
    d = teacher_dir(cfg)
    if (d / "model.pt").exists():
        return f"reuse cached {cfg.teacher} ({d})"
    return f"train {cfg.teacher} for {teacher_config(cfg).epochs} epoch(s) into the cache ({d})"


def folder_plan(cfg: Any, out: Any, *, resume: bool = False, force: bool = False) -> str:
    """What would happen to run folder ``out`` (raises the same ConfigError a real run would)."""
    from .runs import RunDir

    rd = RunDir(out)
    run_cfg = rd.resolve(cfg, resume=resume, force=force)
    stored, summary = rd.read_config(), rd.read_summary() or {}
    if stored is None or not (rd.summary.exists() or rd.checkpoint.exists()):
        return "new run"
    if force:
        return "redone (--force)"
    if not rd.holds(run_cfg):
        return "redone: it holds another config"
    if summary.get("status") == "finished":
        return f"finished: read back (last {summary.get('last_acc', float('nan')):.2f}%)"
    return f"continues from its checkpoint ({summary.get('status', 'started')})"


def step_plan(cfg: Any, ds: Any) -> tuple[int, str]:
    """The step-memory estimate (bytes, and a line against its limit); the check itself ran in preflight."""
    from ..objective import build_objective
    from .device import resolve_device

    objective = build_objective(cfg.objective)
    est = estimate_step(cfg, objective, ds.num_classes, ds.in_shape)
    limit, why = memory_limit(cfg, resolve_device(cfg.device))
    name, size = est.largest()
    return est.total, f"{gib(est.total)} estimated (limit {gib(limit)}: {why}; largest: {name}, {gib(size)})"


def run_plan(cfg: Any, out: Any, *, resume: bool = False, force: bool = False) -> list[str]:
    """``akd run --check``: every check a run makes before training, and what it would do (as lines)."""
    from ..objective import build_objective
    from .runs import RunDir, describe_name

    run_cfg = RunDir(out).resolve(cfg, resume=resume, force=force)
    ds = check_data_and_teacher(run_cfg)
    objective = build_objective(run_cfg.objective)
    terms = " + ".join(f"{t.weight:g}*{t.name}" for t in objective.terms)
    return [
        f"run: {describe_name(run_cfg)}",
        f"objective: {terms}" + (f" ({objective.views} virtual view(s) per image)" if objective.views else ""),
        f"data: {run_cfg.dataset}: {ds.train_x.shape[0]} training / {ds.test_x.shape[0]} evaluation images, "
        f"{ds.num_classes} classes, input {tuple(ds.in_shape)}",
        f"teacher: {teacher_plan(run_cfg)}",
        f"step memory: {step_plan(run_cfg, ds)[1]}",
        f"out: {out}: {folder_plan(cfg, out, resume=resume, force=force)}",
        "check passed: nothing was trained or written",
    ]
