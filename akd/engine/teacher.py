"""Teachers: trained by the same engine (objective ``ce``) and cached by what defines them.

Cache key = the fingerprint of :func:`teacher_config` (teacher model, dataset, dev split and the whole recipe:
epochs, lr, batch size, weight decay, momentum, schedule, amp, seed; not the virtual-view settings, which plain CE never
reads: students that differ only in their RandAugment view share one teacher).  Entry = an ordinary run directory under
``<cache>/teachers/<model>-<dataset>-<hash>/`` (resumable like any run) whose ``model.pt``
holds the weights, the model spec, the class count and input shape, and its accuracy.
A teacher whose classes or input shape do not match the data is refused.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError, ConfigError
from ..models import create_model
from .checkpoint import load_checkpoint, weights_digest
from .teacher_files import load_teacher_file, read_weights
from .config import VIEW_FIELDS, RunConfig
from .runs import RunDir
from ..paths import cache_root


def teacher_config(cfg: RunConfig) -> RunConfig:
    """The run config that trains ``cfg.teacher`` (plain CE, the teacher recipe; no teacher cache: it has no teacher;
    the virtual-view settings at their defaults: plain CE draws no virtual view, so they would only split the cache)."""
    return dataclasses.replace(
        cfg, student=cfg.teacher, teacher=None, teacher_ckpt=None, objective="ce", teacher_cache=False,
        epochs=cfg.teacher_epochs or cfg.epochs, lr=cfg.teacher_lr, seed=cfg.teacher_seed,
        init_seed=None, data_seed=None, view_seed=None, teacher_epochs=None, teacher_lr=None, milestones=None,
        **{k: _DEFAULT_VIEWS[k] for k in VIEW_FIELDS},
    )


_DEFAULT_VIEWS = {k: getattr(RunConfig(), k) for k in VIEW_FIELDS}


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:40]


def teacher_dir(cfg: RunConfig) -> Path:
    tc = teacher_config(cfg)
    return cache_root(cfg.cache_dir) / "teachers" / f"{_slug(tc.student)}-{_slug(tc.dataset)}-{tc.fingerprint()}"


def teacher_identity(cfg: RunConfig) -> str | None:
    """What names the teacher ``cfg`` uses: its checkpoint path (``teacher_ckpt``), else the cache folder of the
    teacher trained for it (:func:`teacher_dir`, named by the teacher config's fingerprint); None without a teacher.
    Runs with equal identities use the same teacher weights (a grid resolves each identity once)."""
    if cfg.teacher_ckpt:
        return str(cfg.teacher_ckpt)
    return str(teacher_dir(cfg)) if cfg.teacher else None


def list_teachers(cache_dir: str | None = None) -> list[dict[str, Any]]:
    rows = []
    root = cache_root(cache_dir) / "teachers"
    for d in sorted(root.glob("*")) if root.exists() else []:
        rd = RunDir(d)
        s, stored = rd.read_summary(), rd.read_config()
        if not isinstance(s, dict) or not isinstance(stored, dict) or "config" not in stored:
            continue  # not a teacher run folder (or a damaged one)
        c = stored["config"]
        rows.append({"model": c["student"], "dataset": c["dataset"], "epochs": c["epochs"], "seed": c["seed"],
                     "status": s.get("status"), "acc": s.get("last_acc"), "path": str(d / "model.pt")})
    from .teacher_files import imported_records

    for r in imported_records(cache_dir):  # `akd teacher --import`: measured once, reused by name
        rows.append({"model": r["model"], "dataset": r["dataset"], "epochs": r["file"].get("epoch", "-"), "seed": "-",
                     "status": "imported", "acc": r["test_acc"], "path": str(Path(r["dir"]) / "model.pt")})
    return rows


def load_model_file(path: str | Path, num_classes: int, in_shape: tuple[int, ...]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model from an akd ``model.pt`` (or a run directory holding one) and check it fits the data."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    st = load_checkpoint(p)
    if "state_dict" not in st or "model" not in st:
        raise CheckpointError(f"{p} is not an akd model file (expected keys model, state_dict)")
    if st.get("num_classes") != num_classes:
        raise ConfigError(f"teacher {p} predicts {st.get('num_classes')} classes but the data set has {num_classes}")
    if tuple(st.get("in_shape", ())) != tuple(in_shape):
        raise ConfigError(f"teacher {p} takes inputs {tuple(st.get('in_shape', ()))} but the data set has {tuple(in_shape)}")
    model = create_model(st["model"], num_classes=num_classes, in_channels=in_shape[0])
    try:
        model.load_state_dict(st["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{p}: weights do not fit model '{st['model']}' ({str(e).splitlines()[0]})") from None
    return model, {"teacher": st["model"], "teacher_acc": st.get("test_acc"), "teacher_path": str(p),
                   "teacher_digest": weights_digest(st["state_dict"])}


_DIGESTS: dict[tuple[str, int, int], str] = {}


def teacher_file_digest(cfg: RunConfig) -> str | None:
    """The weights digest of the teacher ``cfg`` would use, if its file exists already (``--teacher-ckpt`` or the
    cached teacher); None when there is none yet (it would be trained) or it cannot be read (reported later)."""
    p = Path(cfg.teacher_ckpt) if cfg.teacher_ckpt else (_cached_teacher_file(cfg) if cfg.teacher else None)
    if p is not None and p.is_dir():
        p = p / "model.pt"
    if p is None or not p.is_file():
        return None
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _DIGESTS:
        try:
            _DIGESTS[key] = weights_digest(read_weights(p)[0])  # any teacher file format (akd.engine.teacher_files)
        except (CheckpointError, KeyError):
            return None
    return _DIGESTS[key]


def _cached_teacher_file(cfg: RunConfig) -> Path:
    """The cache's file for ``--teacher MODEL``: an imported teacher of (model, dataset) if any, else the trained one."""
    from .teacher_files import imported_dir

    imp = imported_dir(cfg.teacher, cfg.dataset, cfg.cache_dir) / "model.pt"
    return imp if (cfg.dev == 0 and imp.is_file()) else teacher_dir(cfg) / "model.pt"


def _with_published_check(loaded: tuple, cfg: RunConfig, log: Callable[[str], None]) -> tuple:
    """Warn when the teacher's measured accuracy is more than 0.2 points from its published one."""
    from .teacher_files import published_gap_warning

    warn = published_gap_warning(loaded[1]["teacher"], cfg.dataset, loaded[1].get("teacher_acc"))
    if warn:
        log(warn)
    return loaded


def resolve_teacher(cfg: RunConfig, ds: Any, *, train: Callable[..., Any], log: Callable[[str], None] = print,
                    progress: bool = True):
    """The frozen teacher for ``cfg``: from ``--teacher-ckpt``, or the cache (trained on a miss with ``train``, the
    engine's training function: the teacher module receives it instead of importing the trainer)."""
    if cfg.teacher_ckpt:  # akd, RepDistiller/CRD/mdistiller, torchdistill-style or bare state_dict files
        return _with_published_check(load_teacher_file(cfg.teacher_ckpt, cfg.teacher, ds.num_classes, ds.in_shape,
                                                       cfg.cache_dir), cfg, log)
    if not cfg.teacher:
        raise ConfigError("this objective needs a teacher: give --teacher MODEL or --teacher-ckpt PATH")
    from ..models import MODELS

    MODELS.resolve(cfg.teacher)  # a misspelt teacher is an error before a cache entry is made
    imp = _cached_teacher_file(cfg)
    if imp.parent.parent.name == "imported":  # `akd teacher --import` put a (published) teacher here
        log(f"using imported teacher {imp.parent}")
        return _with_published_check(load_teacher_file(imp, cfg.teacher, ds.num_classes, ds.in_shape, cfg.cache_dir), cfg, log)
    d = teacher_dir(cfg)
    if not (d / "model.pt").exists():
        log(f"training teacher {cfg.teacher} on {cfg.dataset} into the cache: {d}")
        train(teacher_config(cfg), d, resume=True, progress=progress, log=log, data=ds)
    else:
        log(f"reusing cached teacher {d}")
    return load_model_file(d, ds.num_classes, ds.in_shape)
