"""Run configuration: one flat, typed record, loadable from TOML/dicts and overridable by CLI flags.

Unknown keys and ill-typed values raise :class:`akd.errors.ConfigError` naming the key (and
the file).  ``objective`` is any spec :func:`akd.build_objective` accepts: a method name
(``"vrm"``), a triple (``"virtual-relation/zs/mse"``) or ``{"method": …, "terms": […]}``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from ..errors import ConfigError, closest
from ..registry import coerce

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

#: the standard CIFAR recipe's milestones (epochs 150/180/210 of 240), scaled to --epochs
MILESTONE_FRACTIONS = (150 / 240, 180 / 240, 210 / 240)


#: fields that say where or how fast a run goes, not what it computes (left out of the fingerprint)
NOT_RESULT_FIELDS = ("device", "log_every", "cache_dir", "data_dir", "compile", "eval_batch_size", "teacher_cache",
                     "max_memory", "workers", "loggers", "checkpoint_every")
#: not result-defining, but hashed by the first release's fingerprint (which names existing teacher-cache folders):
#: hashed at their default value whatever the run sets, so the names stay and the value does not change the identity
HASHED_AT_DEFAULT = ("checkpoint_every",)
#: the virtual-view settings (VRM's RandAugment view): only an objective that reads virtual views draws them, so they
#: do not define a run of any other objective -- a teacher (trained with plain CE) in particular
VIEW_FIELDS = ("ra_ops", "ra_magnitude", "ra_pool", "view_base")
#: where-and-how fields that a resumed run takes from the caller, not from its stored config
#: (a subset of NOT_RESULT_FIELDS: a result field taken from the caller would change the run being continued)
RESUME_FROM_CALLER = ("device", "log_every", "compile", "data_dir", "cache_dir", "eval_batch_size", "workers",
                      "teacher_cache", "max_memory", "checkpoint_every")


@dataclass
class RunConfig:
    # what
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    dev: float = 0.0
    student: str = "cnn_small"
    teacher: str | None = None
    teacher_ckpt: str | None = None
    objective: Any = "ce"
    # recipe (standard CIFAR KD recipe: RepDistiller / mdistiller)
    epochs: int = 240
    batch_size: int = 64
    lr: float | None = None  # None: 0.05, or 0.01 for MobileNet/ShuffleNet students
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    milestones: list | None = None  # None: 150/180/210 of 240 scaled to epochs
    lr_decay: float = 0.1
    # teacher recipe when the teacher has to be trained (None: same as the student's)
    teacher_epochs: int | None = None
    teacher_lr: float | None = None
    teacher_seed: int = 0  # one teacher for every student seed (equal footing)
    # seeds: one seed, split into independent streams (override any of them)
    seed: int = 0
    init_seed: int | None = None
    data_seed: int | None = None
    view_seed: int | None = None
    # virtual views (RandAugment) when the objective reads them
    ra_ops: int = 2
    ra_magnitude: int = 9
    ra_pool: list | None = None  # RandAugment op names (None: akd's 13-op pool, akd.data.RAND_AUGMENT_OPS)
    view_base: Literal["crop", "original"] = "crop"  # virtual views of the cropped/flipped real view, or of the image
    # execution
    device: str = "auto"
    amp: Literal["auto", "bf16", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    teacher_cache: bool = False  # look teacher outputs up in the exact per-view cache (kd, rkd, cc, pkt)
    log_every: int = 50
    eval_batch_size: int = 1024
    checkpoint_every: int = 1  # epochs
    cache_dir: str | None = None
    max_memory: float | None = None  # GiB one training step may use (None: 90 % of what is available; see preflight)
    workers: int | None = None  # decoding processes per training process for streamed data (None: akd.data.stream.default_workers)
    loggers: list | None = None  # logger specs besides metrics.jsonl: csv, tensorboard, wandb, mlflow (akd.loggers)

    # -- derived ---------------------------------------------------------------------------
    def seeds(self) -> dict[str, int]:
        return {
            "init": self.seed if self.init_seed is None else self.init_seed,
            "data": self.seed if self.data_seed is None else self.data_seed,
            "view": self.seed if self.view_seed is None else self.view_seed,
        }

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        s = self.student.lower()
        return 0.01 if ("mobilenet" in s or "shuffle" in s) else 0.05

    def resolved_milestones(self) -> list[int]:
        if self.milestones is not None:
            return [int(m) for m in self.milestones]
        ms = sorted({max(1, round(self.epochs * f)) for f in MILESTONE_FRACTIONS})
        return [m for m in ms if m < self.epochs] if self.epochs > 1 else []

    def resolved(self) -> dict[str, Any]:
        """The config as the run uses it: the defaults that follow other keys (lr, milestones, seed streams) filled in."""
        return {**self.to_dict(), "lr": self.resolved_lr(), "milestones": self.resolved_milestones(),
                **{f"{k}_seed": v for k, v in self.seeds().items()}}

    def validate(self) -> "RunConfig":
        def bad(key, why):
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)!r}: {why}")

        for f in dataclasses.fields(self):  # inf/nan in any number: refused before anything runs
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                bad(f.name, "must be a finite number")
        if self.epochs < 1:
            bad("epochs", "must be >= 1")
        if self.batch_size < 1:
            bad("batch_size", "must be >= 1")
        if self.lr is not None and not self.lr > 0:
            bad("lr", "must be > 0")
        if self.teacher_lr is not None and not self.teacher_lr > 0:
            bad("teacher_lr", "must be > 0")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            bad("teacher_epochs", "must be >= 1")
        if not 0 <= self.momentum < 1:
            bad("momentum", "must be in [0, 1)")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if not 0 <= self.dev < 1:
            bad("dev", "must be in [0, 1)")
        if not 0 < self.lr_decay <= 1:
            bad("lr_decay", "must be in (0, 1]")
        if self.log_every < 1:
            bad("log_every", "must be >= 1")
        if self.max_memory is not None and not self.max_memory > 0:
            bad("max_memory", "must be > 0 (GiB)")
        if self.workers is not None and self.workers < 0:
            bad("workers", "must be >= 0 (0: decode in the training process)")
        if self.checkpoint_every < 1:
            bad("checkpoint_every", "must be >= 1")
        if self.ra_ops < 0 or not 0 <= self.ra_magnitude <= 30:
            bad("ra_magnitude", "ra_ops must be >= 0 and ra_magnitude in [0, 30]")
        if self.loggers:  # unknown names and missing packages: before any work
            from ..loggers import check_loggers

            check_loggers(self.loggers)
        if self.ra_pool is not None:
            from ..data.randaugment import OPS

            bad_ops = [o for o in self.ra_pool if o not in OPS]
            if bad_ops or not self.ra_pool:
                raise ConfigError(f"--ra-pool {','.join(map(str, self.ra_pool))!r}: unknown or empty op list "
                                  f"(first bad: {bad_ops[0] if bad_ops else '-'}); valid ops: {', '.join(OPS)}")
        return self

    def batch_key(self) -> tuple:
        """Runs with equal keys see the same batches, virtual views and teacher, so they can share a process
        (one data stream, one teacher forward per step: :func:`akd.engine.trainer.train_shared`)."""
        sd = self.seeds()
        return (sd["data"], sd["view"], self.dataset, self.dev, self.batch_size, self.device, self.teacher, self.teacher_ckpt,
                self.amp, self.channels_last, self.ra_ops, self.ra_magnitude, json.dumps(self.ra_pool), self.view_base,
                self.data_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, exclude: tuple[str, ...] = NOT_RESULT_FIELDS) -> str:
        """Hash of everything that defines the run's result (not where/how fast it runs).

        Fields added after the first release (:data:`ADDED_FIELDS`) enter the hash only when they differ from
        their default, so adding a field never renames the folders (e.g. the teacher cache's) of runs that do
        not use it; :data:`HASHED_AT_DEFAULT` fields enter it at their default value, for the same reason."""
        defaults = RunConfig.__dataclass_fields__
        d = {}
        for k, v in self.to_dict().items():
            if k in HASHED_AT_DEFAULT:
                d[k] = defaults[k].default
            elif k not in exclude and not (k in ADDED_FIELDS and v == defaults[k].default):
                d[k] = v
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
#: result-defining fields added after the first release (left out of the fingerprint while at their default)
ADDED_FIELDS = ("ra_pool", "view_base")
ALIASES = {"method": "objective"}


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    """As written to config.json (tuples become lists, odd values strings), so stored and live configs compare."""
    return json.loads(json.dumps(dict(d), default=str))


def result_differences(stored: Mapping[str, Any], cfg: RunConfig, stored_terms: Any = None) -> dict[str, tuple[Any, Any]]:
    """``{key: (stored, now)}`` for the result-defining fields in which a stored config (``config.json``'s
    ``"config"``) differs from ``cfg``.  A field the stored config lacks (written by an akd that did not have it
    yet) counts as its default value, so adding a config field with a behaviour-preserving default does not turn
    every existing run directory into "another run".  Two teacher checkpoint *paths* are not compared (the
    same teacher lies at another path on another machine or cache): the run summary's ``teacher_digest``, the
    hash of the teacher's weights, decides whether the teacher is the same (see ``check_same_teacher``).

    ``stored_terms``: the objective's resolved terms as the stored run recorded them (``config.json``'s
    ``objective_terms``, or ``summary.json``'s ``objective``).  An objective named by a preset (``"vrm"``) is
    the same objective only if the preset still resolves to the same terms: a preset whose definition changed
    between akd versions makes an older run "another config" (``objective terms`` in the difference)."""
    now, defaults, old = _plain(cfg.to_dict()), _plain(RunConfig().to_dict()), _plain(stored)
    diff = {}
    for k, v in now.items():
        was = old.get(k, defaults[k])
        if k in NOT_RESULT_FIELDS or was == v or (k == "teacher_ckpt" and was and v):
            continue
        diff[k] = (was, v)
    if stored_terms is not None and "objective" not in diff:
        terms_now = resolved_terms(cfg)
        if terms_now is not None and _plain({"t": stored_terms})["t"] != terms_now:
            diff["objective terms"] = (_brief(stored_terms), _brief(terms_now))
    return diff


def resolved_terms(cfg: RunConfig) -> list[dict[str, Any]] | None:
    """The objective's resolved terms (as stored in run folders), or None when it does not build."""
    from ..errors import ConfigError
    from ..objective import build_objective

    try:
        return _plain({"t": build_objective(cfg.objective).describe()})["t"]
    except ConfigError:
        return None


def _brief(terms: Any) -> str:
    try:
        return " + ".join(f"{t['name']}: {t['affinity']}/{t['norm']}/{t['loss']}" for t in terms)
    except (TypeError, KeyError):
        return str(terms)


def same_result(stored: Mapping[str, Any], cfg: RunConfig, stored_terms: Any = None) -> bool:
    """True when a run with the stored config computes what ``cfg`` computes (see :func:`result_differences`)."""
    return not result_differences(stored, cfg, stored_terms)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def config_from_dict(data: Mapping[str, Any], base: RunConfig | None = None, where: str = "config") -> RunConfig:
    """Overlay ``data`` on ``base`` (default: defaults), type-checking every key."""
    cfg = dataclasses.replace(base) if base is not None else RunConfig()
    hints = _hints()
    data = dict(data)
    if "terms" in data:  # top-level [[terms]] tables in a TOML file
        terms = data.pop("terms")
        obj = data.pop("objective", data.pop("method", None))
        data["objective"] = {"terms": terms, **({"method": obj} if obj else {})}
    for key, value in data.items():
        key = ALIASES.get(key, key)
        norm_key = key.replace("-", "_")
        if norm_key not in FIELDS:
            near = closest(norm_key, FIELDS)
            hint = f" (did you mean '{near}'?)" if near else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
        tp = hints[norm_key]
        if norm_key == "objective":
            setattr(cfg, norm_key, value)
            continue
        try:
            setattr(cfg, norm_key, coerce(value, tp))
        except TypeError:
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where}: key '{key}' = {value!r} must be a finite number") from None
            raise ConfigError(f"{where}: key '{key}' = {value!r} has the wrong type (expected {_tname(tp)})") from None
    return cfg


def _tname(tp) -> str:
    from ..registry import _type_name

    return _type_name(tp)


def load_config(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    return config_from_dict(data, base, where=str(p))
