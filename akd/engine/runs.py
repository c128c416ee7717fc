"""The run folder: one owner for its files and for deciding whether a folder holds "the same run".

``config.json`` (the config, its fingerprint and the objective's resolved terms), ``metrics.jsonl`` (one line per
epoch), ``summary.json`` (status, accuracies, digests, environment), ``checkpoint.pt`` and ``model.pt``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checkpoint import write_json
from .config import RESUME_FROM_CALLER, RunConfig, config_from_dict, resolved_terms, same_result


class RunDir:
    """config.json, metrics.jsonl, summary.json, checkpoint.pt, model.pt inside one folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"
        self.checkpoint = self.path / "checkpoint.pt"
        self.model = self.path / "model.pt"

    def read_summary(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return None

    def read_config(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.config.read_text())
        except (OSError, ValueError):
            return None

    def stored_terms(self) -> Any:
        """The stored run's resolved objective terms: config.json's ``objective_terms`` (or, for folders written
        before it existed, summary.json's ``objective``); None when neither is there."""
        stored = self.read_config() or {}
        if "objective_terms" in stored:
            return stored["objective_terms"]
        return (self.read_summary() or {}).get("objective")

    def resolve(self, cfg: RunConfig, *, resume: bool, force: bool) -> RunConfig:
        """Check the folder and return the config to run (the stored one on ``resume``).  Writes nothing."""
        anc = self.path
        while not anc.exists() and anc != anc.parent:
            anc = anc.parent
        if anc.exists() and (not anc.is_dir() or not os.access(anc, os.W_OK | os.X_OK)):
            why = f"not writable ({anc} is {'not a folder' if not anc.is_dir() else 'read-only'})"
            raise ConfigError(f"run folder {self.path}: {why}", cli=f"--out {self.path}: {why}")
        stored = self.read_config()
        started = self.summary.exists() or self.checkpoint.exists()
        if stored is not None and started:
            same = same_result(stored.get("config") or {}, cfg, self.stored_terms())
            if resume and not force:
                keep = {k: getattr(cfg, k) for k in RESUME_FROM_CALLER}
                cfg = config_from_dict({**stored["config"], **keep}, where=str(self.config))
            elif not same and not force:
                held = f"{self.path} already holds a different run ({stored.get('name', '?')})"
                raise ConfigError(
                    f"run folder {held}; pass resume=True to continue it, force=True to overwrite it, or another folder",
                    cli=f"--out {held}; use --resume to continue it, --force to overwrite it, or another --out")
        elif stored is None and self.path.is_dir() and any(p.name != ".akd-write-test" for p in self.path.iterdir()) and not force:
            foreign = [p.name for p in self.path.iterdir()][:3]
            held = f"{self.path} is not empty and holds no akd run ({', '.join(foreign)})"
            raise ConfigError(f"run folder {held}; pass force=True or another folder", cli=f"--out {held}; use --force or another --out")
        return cfg

    def holds(self, cfg: RunConfig) -> bool:
        """True when the folder's config.json describes a run that computes what ``cfg`` computes."""
        stored = self.read_config()
        return stored is not None and same_result(stored.get("config") or {}, cfg, self.stored_terms())

    def commit(self, cfg: RunConfig, *, force: bool) -> None:
        """Create the folder (after validation), clear it on ``force``, and write config.json."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            why = f"not writable ({e.strerror or e})"
            raise ConfigError(f"run folder {self.path}: {why}", cli=f"--out {self.path}: {why}") from None
        stored = self.read_config()
        if force or (stored is not None and not same_result(stored.get("config") or {}, cfg, self.stored_terms())):
            for p in (self.metrics, self.summary, self.checkpoint, self.model):
                p.unlink(missing_ok=True)
        write_json(self.config, {"fingerprint": cfg.fingerprint(), "name": describe_name(cfg), "config": cfg.to_dict(),
                                 "objective_terms": resolved_terms(cfg)})


def describe_name(cfg: RunConfig) -> str:
    if isinstance(cfg.objective, str):
        obj = cfg.objective
    elif isinstance(cfg.objective, dict) and cfg.objective.get("name"):
        obj = str(cfg.objective["name"])
    else:
        obj = "custom"
    t = cfg.teacher or (Path(cfg.teacher_ckpt).parent.name if cfg.teacher_ckpt else "-")
    return f"{obj}:{t}->{cfg.student}@{cfg.dataset}/seed{cfg.seed}"


def check_same_teacher(rd: RunDir, prev: dict[str, Any], digest: str | None) -> None:
    """A started run is continued or read back only with the teacher weights it was trained with."""
    was = prev.get("teacher_digest")
    if was and digest and was != digest:
        held = (f"{rd.path} holds a run trained with other teacher weights (teacher {was}, now {digest}: "
                "the checkpoint was replaced or retrained)")
        raise ConfigError(f"run folder {held}; pass force=True to redo it, or another folder",
                          cli=f"--out {held}; use --force to redo it, or another --out")
