"""Teacher weight files of other tools, and imported (published) teachers.

Formats read by :func:`read_weights` (tried in order; the first that matches wins):

============  ==========================================================================================
``akd``       akd's model file: ``{"model": spec, "state_dict": …, "num_classes", "in_shape", "test_acc"}``
``checkpoint``  RepDistiller / CRD / mdistiller: ``{"model": state_dict, "epoch", "best_acc" | "accuracy",
              "optimizer", …}`` (RepDistiller's ``<model>_vanilla/ckpt_epoch_240.pth``, mdistiller's
              ``cifar_teachers.tar``)
``keyed``     a state_dict under another key: ``state_dict``, ``model_state_dict``, ``net``, ``teacher``,
              ``student``, ``weights`` (torchdistill and most training scripts)
``bare``      a bare state_dict
============  ==========================================================================================

A ``module.`` prefix on every key (DataParallel) is dropped.  Files are read with ``torch.load(weights_only=True)``
(``argparse.Namespace`` allowed: RepDistiller/torchdistill store their arguments), never by unpickling arbitrary
objects.  Loading is strict: any missing or unexpected key or any other shape is one line naming the first of
each.  The architecture comes from the akd file, else from ``--teacher MODEL``, else from a RepDistiller folder
name ``<model>_vanilla``.

Imported teachers (``akd teacher --import``) live in ``<cache>/teachers/imported/<model>-<dataset>/``: an akd
model file of the same weights (same names, order and bytes, so the weights digest, the run identity, is the
file's) and ``import.json`` with the measured test accuracy and the file's own metadata.  ``--teacher MODEL`` on
that data set then uses the imported teacher instead of training one.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError, ConfigError
from .checkpoint import load_checkpoint, save_checkpoint, weights_digest, write_json

META_KEYS = ("best_acc", "accuracy", "epoch", "best_value", "test_acc")
STATE_KEYS = ("state_dict", "model_state_dict", "net", "teacher", "student", "weights")
PUBLISHED_TOLERANCE = 0.2  # points: warn when a teacher's measured accuracy differs from the published one by more


def _is_state_dict(d: Any) -> bool:
    return isinstance(d, Mapping) and bool(d) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in d.items())


def _number(v: Any) -> float | int | None:
    if torch.is_tensor(v) and v.numel() == 1:
        return float(v.item())
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _meta(st: Mapping) -> dict[str, Any]:
    return {k: _number(st[k]) for k in META_KEYS if k in st and _number(st[k]) is not None}


def _akd(st: Mapping):
    if isinstance(st.get("model"), str) and _is_state_dict(st.get("state_dict")):
        return st["state_dict"], dict(_meta(st), model=st["model"], num_classes=st.get("num_classes"),
                                       in_shape=st.get("in_shape"))
    return None


def _checkpoint(st: Mapping):
    return (st["model"], _meta(st)) if _is_state_dict(st.get("model")) else None


def _keyed(st: Mapping):
    key = next((k for k in STATE_KEYS if _is_state_dict(st.get(k))), None)
    return (st[key], _meta(st)) if key else None


def _bare(st: Mapping):
    return (st, {}) if _is_state_dict(st) else None


FORMATS: tuple[tuple[str, Callable[[Mapping], Any]], ...] = (
    ("akd", _akd), ("checkpoint", _checkpoint), ("keyed", _keyed), ("bare", _bare))


def _load(path: Path) -> Mapping:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return load_checkpoint(path)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a teacher file in any format above; ``meta["format"]`` names it."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    st = _load(p)
    for name, reader in FORMATS:
        got = reader(st)
        if got is not None:
            sd, meta = got
            if all(k.startswith("module.") for k in sd):
                sd = {k[len("module."):]: v for k, v in sd.items()}
            return dict(sd), dict(meta, format=name, path=str(p))
    keys = ", ".join(sorted(map(str, st))[:6])
    raise CheckpointError(f"{p} holds no state_dict (keys: {keys}); expected an akd model file, a RepDistiller/mdistiller "
                          f"checkpoint ('model'), a state_dict under one of {', '.join(STATE_KEYS)}, or a bare state_dict")


def infer_model(path: str | Path, meta: Mapping[str, Any], given: str | None) -> str:
    """The architecture: the akd file's own, else ``given`` (--teacher), else RepDistiller's ``<model>_vanilla`` folder."""
    from ..models import MODELS

    own = meta.get("model")
    if own and given and MODELS.resolve(given)[0].name != MODELS.resolve(own)[0].name:
        raise ConfigError(f"--teacher {given}: {meta['path']} is an akd model file of '{own}'")
    name = own or given
    if name is None:
        m = re.fullmatch(r"(.+)_vanilla", Path(path).resolve().parent.name)
        name = m.group(1) if m and m.group(1) in MODELS else None
    if name is None:
        raise ConfigError(f"{path} does not say its architecture: give it with --teacher MODEL (one of {', '.join(MODELS.names())})")
    MODELS.resolve(name)
    return name


def strict_load(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: str, name: str) -> None:
    """``model.load_state_dict(sd)`` strictly; a mismatch is one line naming the first missing/unexpected/reshaped keys."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in sd.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    reshaped = [k for k in want if k in have and want[k] != have[k]]
    if missing or unexpected or reshaped:
        def first(keys, show):
            return ", ".join(show(k) for k in keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: " + first(missing, lambda k: f"{k} {list(want[k])}"))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: " + first(unexpected, lambda k: f"{k} {list(have[k])}"))
        if reshaped:
            parts.append(f"{len(reshaped)} of another shape: " + first(reshaped, lambda k: f"{k} {list(have[k])} vs {list(want[k])}"))
        raise CheckpointError(f"{path}: weights do not fit model '{name}': " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def load_teacher_file(path: str | Path, model: str | None, num_classes: int, in_shape: tuple[int, ...],
                      cache_dir: str | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a teacher from a file of any format; ``info`` as ``load_model_file`` returns it (+ the file's metadata)."""
    from ..models import create_model

    sd, meta = read_weights(path)
    name = infer_model(path, meta, model)
    if meta["format"] == "akd":
        if meta.get("num_classes") != num_classes:
            raise ConfigError(f"teacher {meta['path']} predicts {meta.get('num_classes')} classes but the data set has {num_classes}")
        if tuple(meta.get("in_shape") or ()) != tuple(in_shape):
            raise ConfigError(f"teacher {meta['path']} takes inputs {tuple(meta.get('in_shape') or ())} but the data set has {tuple(in_shape)}")
    net = create_model(name, num_classes=num_classes, in_channels=in_shape[0])
    strict_load(net, sd, meta["path"], name)
    digest = weights_digest(sd)
    acc = meta.get("test_acc")
    rec = imported_record(digest, cache_dir)
    if rec is not None:  # measured once by `akd teacher --import`
        acc = rec["test_acc"]
    info = {"teacher": name, "teacher_acc": acc, "teacher_path": meta["path"], "teacher_digest": digest}
    if meta["format"] != "akd":
        info["teacher_file"] = {k: v for k, v in meta.items() if k not in ("path",)}
    return net, info


# ------------------------------------------------------------------------------------------------
# imported teachers
# ------------------------------------------------------------------------------------------------
def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:40]


def imported_root(cache_dir: str | None = None) -> Path:
    from ..paths import cache_root

    return cache_root(cache_dir) / "teachers" / "imported"


def imported_dir(model: str, dataset: str, cache_dir: str | None = None) -> Path:
    return imported_root(cache_dir) / f"{_slug(model)}-{_slug(dataset)}"


def imported_records(cache_dir: str | None = None) -> list[dict[str, Any]]:
    root = imported_root(cache_dir)
    out = []
    for d in sorted(root.glob("*")) if root.exists() else []:
        try:
            rec = json.loads((d / "import.json").read_text())
        except (OSError, ValueError):
            continue
        if (d / "model.pt").is_file():
            out.append(dict(rec, dir=str(d)))
    return out


def imported_record(digest: str, cache_dir: str | None = None) -> dict[str, Any] | None:
    return next((r for r in imported_records(cache_dir) if r.get("digest") == digest), None)


def published_gap_warning(model: str, dataset: str, measured: float | None) -> str | None:
    """A warning when ``measured`` differs from the published accuracy of teacher ``model`` by > 0.2 points."""
    from ..published import published_teacher_acc

    pub = published_teacher_acc(dataset, model)
    if pub is None or measured is None or abs(measured - pub["acc"]) <= PUBLISHED_TOLERANCE:
        return None
    return (f"warning: teacher {model} measures {measured:.2f}% on {dataset} but its published accuracy is {pub['acc']:.2f}% "
            f"({pub['source']}): {measured - pub['acc']:+.2f} points (> {PUBLISHED_TOLERANCE})")


def import_teacher(path: str | Path, model: str | None, cfg: Any, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure a teacher file's test accuracy once and add it to the teacher cache under (model, dataset)."""
    from ..data import load_dataset
    from .device import resolve_device
    from .metrics import evaluate

    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, dev=cfg.dev, seed=0)
    net, info = load_teacher_file(path, model, ds.num_classes, ds.in_shape, cfg.cache_dir)
    sd, meta = read_weights(path)
    device = resolve_device(cfg.device)
    net.to(device)
    ev = evaluate(net, ds.test_x.to(device), ds.test_y.to(device), ds.mean, ds.std, batch_size=cfg.eval_batch_size,
                  device=device, amp="off")
    d = imported_dir(info["teacher"], cfg.dataset, cfg.cache_dir)
    # an akd model file (trainer.save_model's format) of the file's own tensors in the file's order: same digest
    save_checkpoint(d / "model.pt", {
        "model": info["teacher"], "num_classes": ds.num_classes, "in_shape": list(ds.in_shape), "dataset": cfg.dataset,
        "state_dict": {k: v.detach().cpu() for k, v in sd.items()}, "test_acc": ev["top1"], "akd_format": 1,
    })
    rec = {"model": info["teacher"], "dataset": cfg.dataset, "source": str(Path(path).resolve()), "format": meta["format"],
           "digest": info["teacher_digest"], "test_acc": ev["top1"], "test_top5": ev["top5"],
           "eval_set": getattr(ds, "eval_name", "test"), "file": {k: v for k, v in meta.items() if k in META_KEYS}}
    write_json(d / "import.json", rec)
    log(f"imported {path} as teacher {info['teacher']} on {cfg.dataset}: test top-1 {ev['top1']:.2f}% "
        f"(file: {', '.join(f'{k} {v:g}' for k, v in rec['file'].items()) or 'no metadata'}) -> {d}")
    warn = published_gap_warning(info["teacher"], cfg.dataset, ev["top1"])
    if warn:
        log(warn)
    return dict(rec, dir=str(d))
