"""The ``akd`` command line: run, teacher, list, grid, compare, report, demo.

Exit codes:

* 0 -- done (for grid/compare: every cell ran; cells that failed are rows with status ``failed``);
* 2 -- user error: bad input (unknown names, invalid values or combinations, options that would be
  ignored, missing or damaged files, an output folder holding another run), one line on stderr,
  detected before anything is written; ``--debug`` shows the traceback;
* 3 -- the run diverged: a loss term became NaN/inf; the run is marked ``failed`` and keeps its
  last good checkpoint (:class:`akd.errors.TrainingDiverged`);
* 130 -- interrupted (SIGINT/SIGTERM): stopped after the current step with a checkpoint; ``--resume``
  continues it.

``akd --help`` imports no torch: the commands import what they need when they run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import AkdError, ConfigError
from .progress import display


class State:
    debug = False


def _fail(e: BaseException, message: str | None = None, code: int | None = None) -> None:
    """Print ONE line (the traceback too with --debug) and exit."""
    if State.debug:
        traceback.print_exc()
    if message is None:
        message = e.cli_message if isinstance(e, AkdError) else str(e)
    text = " ".join(str(message).split("\n")).strip() or type(e).__name__
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # a \r or \x1b in a user's value stays visible
    click.echo(f"error: {text}", err=True)
    _exit(code if code is not None else getattr(e, "exit_code", 2))


def _exit(code: int) -> None:
    """sys.exit, except in a torchrun rank whose process group is still up after a failure: tearing gloo/NCCL
    down at interpreter exit while another rank still talks to it can abort the process (SIGABRT), which would
    replace the exit code and bury the message; the rank leaves at once instead (its files are already written)."""
    d = sys.modules.get("torch.distributed")
    if d is not None and d.is_available() and d.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _usage_line(e: click.UsageError) -> str:
    """A click usage error as one line, with the help command to run."""
    msg = " ".join(e.format_message().split())
    cmd = e.ctx.command_path if e.ctx is not None else "akd"
    return f"{msg} (see '{cmd} --help')"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors are one line on stderr and exit code 2 (3 diverged, 130 interrupted)."""
    args = list(argv if argv is not None else sys.argv[1:])
    State.debug = "--debug" in args
    if State.debug:  # accept --debug anywhere on the line, not only before the command
        args = ["--debug"] + [a for a in args if a != "--debug"]
    no_args_help = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        cli.main(args=args, prog_name="akd", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except no_args_help as e:  # `akd` alone: show the help
        e.show()
        sys.exit(2)
    except click.UsageError as e:
        _fail(e, _usage_line(e), 2)
    except click.ClickException as e:
        _fail(e, e.format_message(), 2)
    except AkdError as e:
        _fail(e)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        _exit(130)
    except OSError as e:  # disk full, permissions, ... outside the places that already explain them
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        _fail(e, f"{e.strerror or e}{where}", 2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(version=__version__, prog_name="akd")
def cli(debug: bool) -> None:
    """akd: relation-based (affinity) knowledge distillation.

    Every objective = affinity x normalisation x loss; VRM, RKD, CC, SP, PKT, KD and CE are
    presets run through one engine.  `akd list` shows every registered part.
    """
    State.debug = State.debug or debug


# ------------------------------------------------------------------------------------------
# shared options
# ------------------------------------------------------------------------------------------
def objective_options(f):
    opts = [
        click.option("--method", help="Preset: ce, kd, rkd, cc, sp, pkt, vrm (see `akd list method`). With term flags "
                                      "(--unreliable, --quantile, --weight, --loss, ...), they change the preset's distillation term."),
        click.option("--affinity", help='Affinity spec, e.g. virtual-relation, "rbf(gamma=0.4)".'),
        click.option("--norm", help="Normalisation spec: none, l2, zs, softmax(t=4), l1, mean."),
        click.option("--loss", "loss_", help="Matching loss spec: mse, l1, smooth-l1, kl, frobenius, cosine."),
        click.option("--source", help="Representation the term reads: logits (default), pooled, map."),
        click.option("--weight", type=float, help="Weight of the relational term (default 1)."),
        click.option("--pre", help="Normalisation applied to the representation before the affinity (e.g. zs)."),
        click.option("--redundant", help="Redundant-edge pruning: none, symmetric, cross-view, both."),
        click.option("--unreliable", help="Unreliable-edge pruning: none, joint-entropy, discrepancy, threshold."),
        click.option("--quantile", type=float, help="Quantile q of --unreliable joint-entropy/discrepancy (default 0.9)."),
        click.option("--ce-weight", type=float, default=None,
                     help="Weight of the CE term (default 1; 0 drops it): added to a flag-built term, or the preset's with --method."),
        click.option("--ce", "ce_loss", help='The CE term\'s loss spec, e.g. "ce(virtual=True)" (CE on the virtual views too) '
                                            'or "ce(label_smoothing=0.1)"; default ce.'),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def run_options(f):
    opts = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config; flags override it."),
        click.option("--dataset", help='Dataset spec: fashion-mnist, cifar100, cifar10, "synthetic(n=512,classes=10)".'),
        click.option("--data-dir", help="Folder with the data set files."),
        click.option("--dev", type=float, help="Hold out this fraction of train as a seeded dev set (evaluate on it, not test)."),
        click.option("--student", help="Student model spec (see `akd list model`)."),
        click.option("--teacher", help="Teacher model spec: reuse the cached teacher or train it."),
        click.option("--teacher-ckpt", type=click.Path(), help="Teacher weights (model.pt or a run directory)."),
        click.option("--teacher-epochs", type=int, help="Epochs for training the teacher (default: --epochs)."),
        click.option("--epochs", type=int, help="Epochs (default 240; milestones scale with it)."),
        click.option("--batch-size", type=int, help="Batch size (default 64)."),
        click.option("--lr", type=float, help="Learning rate (default 0.05; 0.01 for MobileNet/ShuffleNet)."),
        click.option("--seed", type=int, help="Seed (init, data order and virtual views streams)."),
        click.option("--device", help="auto (default), cpu, cuda, cuda:N."),
        click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile student and teacher."),
        click.option("--teacher-cache/--no-teacher-cache", "teacher_cache", default=None,
                     help="Look teacher logits/pooled up in the exact per-view cache (kd, rkd, cc, pkt; built once per teacher "
                          "and data set, stored under <akd cache>/teacher-views for later runs)."),
        click.option("--max-memory", type=float, help="GiB one training step may use (default: 90% of the memory available "
                                                     "now); a step estimated above it is refused before any work."),
        click.option("--quiet", is_flag=True, help="No progress display."),
        SET_OPTION,
        LOGGER_OPTION,
    ]
    for o in reversed(opts + VIEW_OPTIONS):
        f = o(f)

    @functools.wraps(f)
    def with_config_flags(*args, **kw):
        # the virtual-view flags, --logger and --set reach the config through apply_overrides (one place), not every
        # command's signature; --set is parsed here, so a bad key stops the command before any work
        meta = click.get_current_context().meta
        meta["akd.config_flags"] = {k: kw.pop(k) for k in VIEW_FLAGS + ("loggers",)}
        meta["akd.set"] = parse_set_values(kw.pop("set_values"))
        with display(not kw["quiet"]):  # downloads, teacher-cache builds, evaluations: quiet too
            return f(*args, **kw)

    return with_config_flags


def _specs(ctx, param, value: str | None) -> list[str] | None:
    """A comma-separated list of specs (commas inside a spec's parentheses stay), e.g. ``csv,wandb(mode='offline')``."""
    from .registry import split_top_level

    return None if value is None else [p.strip() for p in split_top_level(value) if p.strip()]


LOGGER_OPTION = click.option(
    "--logger", "loggers", callback=_specs, metavar="NAMES",
    help="Also send the config and every epoch's metrics to: csv (metrics.csv in the run folder), tensorboard, wandb, "
         "mlflow; comma-separated, each a spec such as \"wandb(project='kd',mode='offline')\". "
         "Default: metrics.jsonl only. Config key: loggers.")

SET_OPTION = click.option(
    "--set", "set_values", multiple=True, metavar="KEY=VALUE",
    help="Set any run-config key (repeatable), e.g. --set weight_decay=1e-4 --set milestones=[30,60] --set amp=off; "
         "VALUE is read as a TOML literal (3, 0.1, true, [1, 2], \"text\"), else as text; none clears an optional key. "
         "Order: defaults < --config FILE < --set < the other flags; a key set by --set and by its own flag is an error.")


def parse_set_values(items: tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as ``{run-config key: value}`` (dashes or underscores, ``method`` = ``objective``).

    An unknown key is one line naming it and the valid keys, closest first; a key given twice is refused."""
    from .engine.config import ALIASES, FIELDS
    from .errors import closest_first

    out: dict[str, Any] = {}
    for item in items:
        raw, sep, text = item.partition("=")
        key = ALIASES.get(raw.strip(), raw.strip()).replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set weight_decay=1e-4")
        if key not in FIELDS:
            raise ConfigError(f"--set {item}: unknown run-config key '{raw.strip()}'; valid keys: "
                              f"{', '.join(closest_first(key, FIELDS))}")
        if key in out:
            raise ConfigError(f"--set {key} is given twice")
        out[key] = _set_value(key, text.strip())
    return out


def _set_value(key: str, text: str) -> Any:
    """A --set VALUE: a TOML literal (typed as the config file would type it), ``none`` for an optional key, else text.
    The config's own type check (:func:`akd.engine.config.config_from_dict`) then names a value of the wrong type."""
    import typing

    from .engine.config import RunConfig, tomllib

    if text.lower() == "none" and type(None) in typing.get_args(typing.get_type_hints(RunConfig)[key]):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


#: run-config keys of the virtual views (VRM's RandAugment view), as flags of run/teacher/grid/compare
VIEW_FLAGS = ("ra_ops", "ra_magnitude", "ra_pool", "view_base")
VIEW_OPTIONS = [
    click.option("--ra-ops", type=int, help="Virtual views: RandAugment ops per image (default 2)."),
    click.option("--ra-magnitude", type=int, help="Virtual views: RandAugment magnitude bin 0..30 (default 9)."),
    click.option("--ra-pool", callback=lambda ctx, p, v: None if v is None else [o.strip() for o in v.split(",") if o.strip()],
                 help="Virtual views: comma-separated RandAugment ops to draw from (default: all 13, see akd.data.RAND_AUGMENT_OPS)."),
    click.option("--view-base", type=click.Choice(["crop", "original"]),
                 help="Virtual views of the real view's crop/flip (crop, default) or of the stored image (original)."),
]


def _meta(key: str) -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(key, {}) if ctx is not None else {}


def set_values() -> dict[str, Any]:
    """The command's ``--set`` keys and values (parsed by :func:`run_options`)."""
    return _meta("akd.set")


def apply_overrides(cfg, overrides: dict[str, Any]):
    """Overlay ``--set`` and then the flags that were given on ``cfg`` (both win over a config file).

    A key given by ``--set`` and by its own flag is refused rather than silently decided."""
    from .engine import config_from_dict

    sets = set_values()
    given = {k: v for k, v in {**_meta("akd.config_flags"), **overrides}.items() if v is not None}
    for k in sets.keys() & given.keys():
        raise ConfigError(f"--set {k} and --{FLAG_OF.get(k, k.replace('_', '-'))} both set '{k}'; give one of them")
    cfg = config_from_dict(given, config_from_dict(sets, cfg, where="--set"), where="command line")
    # --teacher on the command line replaces a file's teacher_ckpt and vice versa
    chosen = {**sets, **given}
    if chosen.get("teacher_ckpt") is not None and chosen.get("teacher") is None:
        cfg.teacher = None
    if chosen.get("teacher") is not None and chosen.get("teacher_ckpt") is None:
        cfg.teacher_ckpt = None
    return cfg


#: run-config keys whose flag is not the key with dashes
FLAG_OF = {"loggers": "logger", "teacher_lr": "lr", "teacher_seed": "seed"}  # the last two: akd teacher's flags


def refuse_set_keys(keys: dict[str, str]) -> None:
    """Refuse ``--set`` keys that the command decides itself (``{key: why}``): they would be ignored."""
    for k in set_values().keys() & keys.keys():
        raise ConfigError(f"--set {k} would be ignored: {keys[k]}")


def check_config(cfg, config_path=None, objective_from_file: bool = False):
    """Validate everything that needs no data: objective, values, device, model and dataset names.

    Runs before anything is written, so a typo never leaves a run directory behind.
    """
    from .data import DATASETS
    from .engine.device import resolve_device
    from .models import MODELS
    from .objective import build_objective

    try:
        build_objective(cfg.objective)
    except ConfigError as e:
        if config_path and objective_from_file:
            raise ConfigError(f"{config_path}: {e}") from None
        raise
    cfg.validate()
    resolve_device(cfg.device)
    MODELS.resolve(cfg.student)
    if cfg.teacher:
        MODELS.resolve(cfg.teacher)
    DATASETS.resolve(cfg.dataset)
    return cfg


def build_config(config_path, overrides: dict[str, Any], objective_flags: dict[str, Any]):
    from .engine import RunConfig, load_config

    cfg = load_config(config_path) if config_path else RunConfig()
    cfg = apply_overrides(cfg, overrides)
    obj = objective_from_flags(objective_flags)
    if obj is not None:
        if "objective" in set_values():
            raise ConfigError("--set objective and the objective flags (--method, --affinity, ...) both set the objective; give one of them")
        cfg.objective = obj
    return check_config(cfg, config_path, objective_from_file=obj is None)


def preflight_run(cfg):
    """Checks that need the data (batch size, teacher checkpoint fit); returns the loaded data set."""
    from .engine.preflight import check_data_and_teacher

    return check_data_and_teacher(cfg)


def _remove_unstarted(out_dir: Path, existed: bool) -> None:
    """After a failure before training started, remove what `train` wrote into a fresh --out."""
    if not out_dir.is_dir():
        return
    if {p.name for p in out_dir.iterdir()} - {"config.json"}:
        return
    (out_dir / "config.json").unlink(missing_ok=True)
    if not existed:
        try:
            out_dir.rmdir()
        except OSError:
            pass


def _instance_loss(spec: str) -> bool:
    """True for instance terms on logits (ce, kd, dkd, ...): they need no --affinity."""
    from .losses import LOSSES
    from .registry import parse_spec

    return LOSSES.get(parse_spec(spec, "loss")[0]).obj.instance


#: the flags of one objective term (akd run): a whole new term, or changes to a preset's distillation term
TERM_FLAGS = ("affinity", "norm", "loss", "source", "weight", "pre", "redundant", "unreliable", "quantile")


def objective_from_flags(fl: dict[str, Any]) -> Any:
    """The objective the objective flags ask for (None if no objective flag given).

    * ``--method M`` alone: the preset's name (as before);
    * ``--method M`` with term flags: the preset's terms with its distillation term (every term but CE) changed by
      the flags, and ``--ce-weight`` setting its CE weight; the effective terms are recorded (the run identity
      follows them); a preset with several distillation terms is ambiguous (one line naming them);
    * term flags alone: CE (``--ce-weight``) + the term the flags describe (needs ``--loss``)."""
    from .objective import with_ce

    method = fl.get("method")
    term = {k: fl[k] for k in TERM_FLAGS if fl.get(k) is not None}
    ce_weight, ce_loss = fl.get("ce_weight"), fl.get("ce_loss")
    if method is None:
        if not term and (ce_weight is not None or ce_loss is not None):
            given = f"--ce-weight {ce_weight:g}" if ce_weight is not None else f"--ce {ce_loss}"
            raise ConfigError(f"{given} would be ignored: it sets the CE term of --method's preset or of a "
                              "term built from --affinity/--norm/--loss; give one of them")
        if not term:
            return None
        _check_new_term(term)
        return {"terms": with_ce([], ce_loss, ce_weight) + [term],
                "name": "/".join(str(term.get(k, "none")) for k in ("affinity", "norm", "loss"))}
    if not term and ce_weight is None and ce_loss is None:
        return method
    return preset_with_flags(method, term, ce_weight, ce_loss)


def _check_new_term(term: dict[str, Any]) -> None:
    """A term built from flags names its loss (and an affinity unless the loss is an instance loss: ce, kd, ...)."""
    if "loss" not in term:
        flags = "/".join(f"--{k}" for k in term)
        raise ConfigError(f"{flags} without --method build a new term, which needs --loss too (e.g. --loss mse); "
                          "to change a preset's term, give --method too")
    if "affinity" not in term and not _instance_loss(term["loss"]):
        raise ConfigError("--loss needs --affinity too (e.g. --affinity virtual-relation)")
    _check_quantile(term, term.get("name", "the flags' term"))


def _check_quantile(term: dict[str, Any], name: str) -> None:
    """--quantile sets the joint-entropy/discrepancy rule's quantile: with another rule it would be ignored."""
    if "quantile" in term and term.get("unreliable", "none") not in ("joint-entropy", "discrepancy"):
        raise ConfigError(f"--quantile {term['quantile']:g} would be ignored: term '{name}' has unreliable="
                          f"{term.get('unreliable', 'none')} (the quantile is joint-entropy's and discrepancy's; add "
                          "--unreliable joint-entropy or --unreliable discrepancy)")


def preset_with_flags(method: str, changes: dict[str, Any], ce_weight: float | None,
                      ce_loss: str | None = None) -> dict[str, Any]:
    """Preset ``method``'s terms with its one distillation term updated by ``changes`` (a preset without one gets
    ``changes`` as an added term) and its CE term set by ``ce_weight`` (0 drops CE) and ``ce_loss``
    (:func:`akd.objective.with_ce`); named e.g. ``vrm(unreliable=discrepancy,quantile=0.8)``."""
    from .objective import is_ce_term, term_list, with_ce

    terms, name = term_list(method)
    if changes:
        distill = [i for i, t in enumerate(terms) if not is_ce_term(t)]
        if len(distill) > 1:
            names = ", ".join(str(terms[i].get("name") or terms[i].get("loss")) for i in distill)
            flags = "/".join(f"--{k}" for k in changes)
            raise ConfigError(f"{flags}: preset {name} has {len(distill)} distillation terms ({names}), so which one the "
                              "flags change is ambiguous; give the terms in a config file ([[terms]], see `akd list method`)")
        if distill:
            terms[distill[0]] = {**terms[distill[0]], **changes}
            _check_quantile(terms[distill[0]], str(terms[distill[0]].get("name", name)))
        else:
            _check_new_term(changes)
            terms.append(dict(changes))
    if ce_weight is not None or ce_loss is not None:
        terms = with_ce(terms, ce_loss, ce_weight)
    ce = {**({} if ce_weight is None else {"ce_weight": ce_weight}), **({} if ce_loss is None else {"ce": ce_loss})}
    label = ",".join(f"{k}={v}" for k, v in {**changes, **ce}.items())
    return {"terms": terms, "name": f"{name}({label})"}


def default_out(cfg) -> Path:
    from .registry import parse_spec

    obj = cfg.objective if isinstance(cfg.objective, str) else (cfg.objective.get("name") if isinstance(cfg.objective, dict) else "custom")
    ds = parse_spec(cfg.dataset, "dataset")[0]
    slug = f"{obj}-{cfg.student}-{ds}-s{cfg.seed}".replace("/", "_").replace("(", "_").replace(")", "").replace(",", "_").replace("=", "")
    return Path("runs") / slug


def print_summary(s: dict[str, Any], out: Path) -> None:
    ta = s.get("teacher_acc")
    click.echo("")
    click.echo(f"run        {s.get('name')}")
    click.echo(f"objective  {s.get('objective_name')}: " + " + ".join(f"{t['weight']:g}*{t['name']}" for t in s.get("objective", [])))
    if s.get("teacher"):
        click.echo(f"teacher    {s['teacher']}  acc {ta:.2f}%" if ta is not None else f"teacher    {s['teacher']}")
    click.echo(f"student    {s.get('student')}  last {s['last_acc']:.2f}%  best {s['best_acc']:.2f}% (epoch {s['best_epoch']})  [{s.get('eval_set', 'test')} set]")
    click.echo(f"time       {s['time_s']:.1f} s training  ({s['images_per_s']:,.0f} img/s on {s.get('device')})")
    click.echo(f"run dir    {out}")


# ------------------------------------------------------------------------------------------
# akd run
# ------------------------------------------------------------------------------------------
@cli.command()
@objective_options
@run_options
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/<method>-<student>-<dataset>-s<seed>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (with its stored config).")
@click.option("--force", is_flag=True, help="Overwrite a different run in --out.")
@click.option("--check", is_flag=True, help="Run every check (specs, data, teacher, taps, step memory, output folders) and print what would run; train and write nothing.")
@click.option("--nproc", type=int, default=None,
              help="Train with N processes (DistributedDataParallel; one GPU each on CUDA, gloo on CPU). "
                   "--batch-size is the global batch (N must divide it); the lr is not rescaled.")
@click.option("--global-relations/--local-relations", default=None,
              help="Multi-process: build relational terms over the global batch (all-gathered representations) "
                   "or over each process's local batch (default; --resume keeps the run's choice).")
@click.option("--sync-bn/--no-sync-bn", default=None,
              help="Multi-process on CUDA: SyncBatchNorm in the student (default off; --resume keeps the run's choice).")
@click.option("--workers", type=int, default=None,
              help="Decoding processes per training process for data streamed from files (image-folder); "
                   "default min(8, CPUs per process - 1). Config key: workers.")
def run(config_path, dataset, data_dir, dev, student, teacher, teacher_ckpt, teacher_epochs, epochs, batch_size, lr, seed,
        device, compile_, teacher_cache, max_memory, quiet, out, resume, force, check, nproc, global_relations, sync_bn, workers,
        **objective_flags):
    """One run: train a student with an objective (flags, --method or --config).

    \b
    akd run --affinity virtual-relation --norm zs --loss mse --teacher cnn_wide --student cnn_tiny
    akd run --method rkd --dataset "synthetic(n=512)" --teacher resnet20 --student resnet8 --epochs 2
    akd run --config experiments/fashion_mnist_demo.toml --seed 1
    akd run --method vrm --teacher cnn_wide --student cnn_small --batch-size 128 --nproc 2 --global-relations
    torchrun --nproc_per_node 4 -m akd run --config experiments/cifar100/resnet56_resnet20.toml --global-relations --sync-bn
    """
    from .engine.distributed import DistOptions, check_world, torchrun_world
    from .engine.runs import RunDir
    from .engine.trainer import RunInterrupted
    from .errors import TrainingDiverged

    overrides = dict(dataset=dataset, data_dir=data_dir, dev=dev, student=student, teacher=teacher, teacher_ckpt=teacher_ckpt,
                     teacher_epochs=teacher_epochs, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                     compile=compile_, teacher_cache=teacher_cache, max_memory=max_memory, workers=workers)
    cfg = build_config(config_path, overrides, {k.rstrip("_"): v for k, v in objective_flags.items()})
    out_dir = Path(out) if out else default_out(cfg)
    if resume and force:
        raise ConfigError("give either --resume or --force, not both")
    existed = out_dir.exists()
    fresh = RunDir(out_dir).read_config() is None
    if resume and fresh:
        raise ConfigError(f"--resume: {out_dir} holds no akd run to resume (no config.json); drop --resume to start one")
    if resume:
        _check_resume_loggers(RunDir(out_dir))
    # distributed: `--nproc N` spawns N ranks here; under torchrun every rank runs this command
    world = torchrun_world()
    opts = DistOptions(global_relations=global_relations, sync_bn=sync_bn)
    procs = _processes(nproc, world)
    rank0 = world is None or world[0] == 0
    if procs > 1 and not resume:
        check_world(cfg, procs, opts)
    if check:
        from .engine.preflight import run_plan

        click.echo("\n".join(run_plan(cfg, out_dir, resume=resume, force=force)))
        return
    data = None
    if not resume and rank0:  # the stored config replaces the flags on --resume; otherwise check the data before writing
        data = preflight_run(cfg)
    try:
        s = _train_here(cfg, out_dir, procs, world, opts, data, resume=resume, force=force, quiet=quiet)
    except AkdError as e:
        if fresh and rank0 and not isinstance(e, (RunInterrupted, TrainingDiverged)):
            _remove_unstarted(out_dir, existed)
        raise
    if rank0:
        print_summary(s, out_dir)


def _processes(nproc: int | None, world: tuple[int, int, int] | None) -> int:
    """How many processes train: torchrun's world size, else ``--nproc`` (default 1)."""
    if nproc is not None and nproc < 1:
        raise ConfigError(f"--nproc {nproc}: must be >= 1")
    if nproc is not None and nproc > 1 and world is not None:
        raise ConfigError("--nproc launches its own processes; under torchrun leave it out")
    return world[1] if world is not None else (nproc or 1)


def _train_here(cfg, out_dir: Path, procs: int, world: tuple[int, int, int] | None, opts, data, *, resume: bool, force: bool,
                quiet: bool) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``: ``procs`` ranks launched here, this rank of torchrun's world, or one process."""
    from .engine import train
    from .engine.distributed import launch, train_distributed

    rank0 = world is None or world[0] == 0
    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    if procs > 1 and world is None:
        return launch(procs, cfg, out_dir, resume=resume, force=force, progress=not quiet, opts=opts)
    if world is not None:
        return train_distributed(cfg, out_dir, resume=resume, force=force, progress=not quiet and rank0,
                                 log=echo if rank0 else None, opts=opts, data=data)
    if opts.global_relations or opts.sync_bn:
        echo("note: one process: --global-relations/--sync-bn change nothing (relations span the whole batch)")
    return train(cfg, out_dir, resume=resume, force=force, progress=not quiet, log=echo, data=data)


def _check_resume_loggers(rd) -> None:
    """--resume continues a run with its stored config, loggers included: other --logger backends would be ignored."""
    stored = (rd.read_config() or {}).get("config", {}).get("loggers")
    given = {**_meta("akd.config_flags"), **set_values()}.get("loggers")
    if given is not None and given != stored:
        raise ConfigError(f"--logger {','.join(given) or 'none'} would be ignored: --resume continues {rd.path} with its "
                          f"stored config (loggers: {','.join(stored or []) or 'none'})")


# ------------------------------------------------------------------------------------------
# akd teacher
# ------------------------------------------------------------------------------------------
#: run-config keys that akd teacher decides itself (akd.engine.teacher.teacher_config), so a --set of them is refused
TEACHER_DECIDES = {
    "student": "akd teacher trains the model of --model", "teacher_ckpt": "akd teacher trains a teacher or --import's one",
    "objective": "a teacher is trained with ce", "lr": "the teacher's lr is teacher_lr (--lr)",
    "seed": "the teacher's seed is teacher_seed (--seed)", "milestones": "a teacher's milestones follow its epochs",
    **{k: "a teacher's seed streams all come from teacher_seed (--seed)" for k in ("init_seed", "data_seed", "view_seed")},
    **{k: "a teacher is trained with ce, which draws no virtual views" for k in VIEW_FLAGS},
}


@cli.command()
@run_options
@click.option("--list", "list_", is_flag=True, help="Show the teacher cache.")
@click.option("--model", help="Teacher model spec (same as --student/--teacher).")
@click.option("--import", "import_", type=click.Path(), help="Import a teacher file (akd, RepDistiller/CRD/mdistiller, "
              "torchdistill, bare state_dict) for --model on --dataset: measure its test accuracy once and add it to the cache, "
              "so --teacher MODEL reuses it.")
def teacher(config_path, dataset, data_dir, dev, student, teacher, teacher_ckpt, teacher_epochs, epochs, batch_size, lr, seed,
            device, compile_, teacher_cache, max_memory, quiet, list_, model, import_):
    """Train (or reuse) a cached teacher; --import FILE adds a published one; --list shows the cache.

    For the teacher, --epochs, --lr and --seed are its recipe's teacher_epochs, teacher_lr and teacher_seed."""
    from .engine import list_teachers, train
    from .engine.teacher import teacher_config, teacher_dir

    if list_:
        from .engine import teacher_cache as tc
        from .engine.teacher import cache_root

        refuse_given(_options() - {"list_", "quiet"}, "--list only shows the teacher cache")
        rows = list_teachers()
        click.echo(_table(rows, ["model", "dataset", "epochs", "seed", "status", "acc", "path"]) if rows else "teacher cache is empty")
        views = cache_root() / "teacher-views"
        n, size = tc.stored(views)
        if n:
            click.echo(f"teacher-view tables (--teacher-cache): {n} file(s), {size / 2**20:,.1f} MiB in {views} (delete to free space)")
        return
    refuse_given({"teacher_ckpt"}, "akd teacher trains a teacher; to add a trained one to the cache, use --import FILE --model MODEL")
    refuse_given({"teacher_cache"}, "a teacher is trained with ce, which reads no teacher outputs")
    refuse_given(set(VIEW_FLAGS), TEACHER_DECIDES["ra_ops"])
    refuse_set_keys(TEACHER_DECIDES)
    names = [n for n in (model, teacher, student) if n]
    if len(names) > 1:
        raise ConfigError(f"give the teacher model once (--model {names[0]}), not also as --teacher/--student")
    if import_:
        from .engine.config import FIELDS
        from .engine.teacher_files import import_teacher

        why = "--import measures a trained teacher's accuracy; it trains nothing"
        refuse_given(_options() - IMPORT_OPTIONS, why)
        refuse_set_keys({k: why for k in FIELDS if k not in IMPORT_KEYS})
        cfg = build_config(config_path, dict(dataset=dataset, data_dir=data_dir, dev=dev, device=device), {})
        import_teacher(import_, names[0] if names else cfg.teacher, cfg, log=lambda m: click.echo(m, err=m.startswith("warning")))
        return
    if epochs is not None and teacher_epochs is not None:
        raise ConfigError("--epochs and --teacher-epochs both set the teacher's epochs; give one of them")
    overrides = dict(dataset=dataset, data_dir=data_dir, dev=dev, teacher=names[0] if names else None, batch_size=batch_size,
                     device=device, compile=compile_, max_memory=max_memory, teacher_epochs=teacher_epochs if teacher_epochs is not None else epochs,
                     teacher_lr=lr, teacher_seed=seed)
    cfg = build_config(config_path, overrides, {})
    if not cfg.teacher:
        raise ConfigError("give the teacher model: akd teacher --model resnet32x4 [--dataset ...]")
    d = teacher_dir(cfg)
    s = train(teacher_config(cfg), d, resume=True, progress=not quiet, log=lambda m: click.echo(m, err=True))
    print_summary(s, d)


#: what akd teacher --import reads: its options and run-config keys (akd.engine.teacher_files.import_teacher)
IMPORT_OPTIONS = {"config_path", "dataset", "data_dir", "dev", "device", "model", "teacher", "student", "quiet", "import_", "set_values"}
IMPORT_KEYS = ("dataset", "data_dir", "dev", "device", "cache_dir", "eval_batch_size", "teacher")


def _options() -> set[str]:
    """The names of the current command's options."""
    return {p.name for p in click.get_current_context().command.params if p.name}


def refuse_given(names: set[str], why: str) -> None:
    """Refuse the options among ``names`` that were given on the command line: ``why`` they would be ignored."""
    for p in click.get_current_context().command.params:
        if p.name in names and flag_given(p.name):
            raise ConfigError(f"{p.opts[0]} would be ignored: {why}")


# ------------------------------------------------------------------------------------------
# akd list
# ------------------------------------------------------------------------------------------
FAMILIES = ("affinity", "norm", "loss", "schedule", "method", "model", "dataset")


def _registry(family: str):
    from . import AFFINITIES, LOSSES, METHODS, NORMALIZATIONS

    if family == "model":
        from .models import MODELS

        return MODELS
    if family == "dataset":
        from .data import DATASETS

        return DATASETS
    if family == "schedule":
        from .schedules import SCHEDULES

        return SCHEDULES
    return {"affinity": AFFINITIES, "norm": NORMALIZATIONS, "loss": LOSSES, "method": METHODS}[family]


@cli.command("list")
@click.argument("family", required=False)
@click.option("--formula", is_flag=True, help="Also print each part's full docstring (formula, source).")
def list_(family, formula):
    """Every registered name with its one-line doc and parameters: affinity, norm, loss, method, model, dataset."""
    if family is not None and family not in FAMILIES:
        from .errors import unknown

        aliases = {"normalization": "norm", "normalisation": "norm", "losses": "loss", "methods": "method",
                   "models": "model", "datasets": "dataset", "affinities": "affinity", "schedules": "schedule"}
        if family in aliases:
            family = aliases[family]
        else:
            raise unknown("family", family, FAMILIES)
    for fam in [family] if family else FAMILIES:
        reg = _registry(fam)
        click.echo(f"{fam}:")
        for e in reg.entries():
            alias = f" (alias {', '.join(e.aliases)})" if e.aliases else ""
            click.echo(f"  {e.name}{alias}: {e.doc}")
            if e.params and fam != "model":
                click.echo(f"      params: {e.signature()}")
            if fam == "method":
                for t in e.meta.get("terms", []):
                    click.echo("      term: " + ", ".join(f"{k}={v}" for k, v in t.items()))
            if formula:
                for line in e.formula.splitlines()[1:]:
                    click.echo(f"      {line}")
        click.echo("")


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(fmt(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# akd grid / compare / report
# ------------------------------------------------------------------------------------------
def _seeds(text: str | None) -> list[int]:
    if text is None:
        return [0]
    parts = [p for p in (x.strip() for x in text.split(",")) if p]
    if not parts:
        raise ConfigError("--seeds is empty; give e.g. --seeds 0,1,2")
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: seeds must be integers, e.g. 0,1,2") from None


def _print_table(df, out: Path) -> None:
    from .experiment import markdown_table

    click.echo("")
    click.echo(markdown_table(df))
    files = [out / f for f in ("results.csv", "results.md", "results.png", "curves.png") if (out / f).exists()]
    click.echo("results: " + ", ".join(str(f) for f in files))


@cli.command()
@click.option("--grid", "grid_path", type=click.Path(dir_okay=False), help="TOML grid file ([base], [axes], seeds).")
@click.option("--method", "methods", help="Comma-separated presets to put on an axis.")
@click.option("--affinity", help="Comma-separated affinity specs (an axis).")
@click.option("--norm", help="Comma-separated normalisations (an axis).")
@click.option("--loss", "loss_", help="Comma-separated losses (an axis).")
@click.option("--source", help="Comma-separated representations (an axis).")
@click.option("--weight", help="Comma-separated term weights (an axis).")
@click.option("--pre", help="Comma-separated pre-normalisations (an axis).")
@click.option("--redundant", help="Comma-separated redundant-edge pruning rules (an axis).")
@click.option("--unreliable", help="Comma-separated unreliable-edge pruning rules (an axis).")
@click.option("--axis", "extra_axes", multiple=True, help="Any run-config key as an axis: --axis student=cnn_tiny,cnn_small.")
@click.option("--seeds", help="Comma-separated seeds (default 0).")
@click.option("--ce-weight", type=float, default=1.0, show_default=True,
              help="Weight of the CE term added to each flag-built term (with --grid: instead of the file's ce_weight).")
@click.option("--ce", "ce_specs", help='Comma-separated loss specs of the CE term (an axis), e.g. "ce,ce(virtual=True)".')
@run_options
@click.option("--out", type=click.Path(file_okay=False), default="runs/grid", show_default=True, help="Grid directory (re-run to resume).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Cells run in parallel (processes; one per GPU when several).")
@click.option("--share-teacher/--no-share-teacher", default=True, show_default=True,
              help="Train the cells of a seed together on the same batches with one teacher forward per batch "
                   "(results equal separate runs; time per run is then an amortised share).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine (--jobs processes); ray: every group of cells is a Ray task (one GPU each "
                   "when the cluster has GPUs). Needs pip install akd[ray].")
@click.option("--address", help="Ray cluster to join (--backend ray), e.g. auto or ray://head:10001; default: a local Ray.")
@click.option("--force", is_flag=True, help="Redo the runs in --out that were trained with another config (without it: an error).")
@click.option("--check", is_flag=True, help="Run every check (specs, data, teacher, taps, step memory, output folders) and print what would run; train and write nothing.")
def grid(grid_path, methods, affinity, norm, loss_, source, weight, pre, redundant, unreliable, extra_axes, seeds, ce_weight, ce_specs,
         config_path, dataset, data_dir, dev, student, teacher, teacher_ckpt, teacher_epochs, epochs, batch_size, lr, seed,
         device, compile_, teacher_cache, max_memory, quiet, out, jobs, share_teacher, backend, address, force, check):
    """Ablation grid: cartesian product of axes over a base config, several seeds, resumable.

    \b
    akd grid --affinity gram,cosine,virtual-relation --norm none,l2,zs,softmax --loss mse,l1 --seeds 0,1,2 \\
             --teacher cnn_wide --student cnn_tiny --epochs 5 --out runs/ablation
    akd grid --grid experiments/vrm_ablation.toml --out runs/vrm-ablation
    akd grid --grid experiments/vrm_ablation.toml --out /shared/runs/vrm-ablation --backend ray --address auto
    """
    from .experiment import Grid, grid_from_file, run_grid

    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be >= 1")
    overrides = dict(dataset=dataset, data_dir=data_dir, dev=dev, student=student, teacher=teacher, teacher_ckpt=teacher_ckpt,
                     teacher_epochs=teacher_epochs, epochs=epochs, batch_size=batch_size, lr=lr, device=device, compile=compile_, teacher_cache=teacher_cache, max_memory=max_memory)
    if grid_path:
        from .engine import RunConfig, load_config

        g = grid_from_file(grid_path, load_config(config_path) if config_path else RunConfig())
        g.base = check_config(apply_overrides(g.base, overrides), grid_path, objective_from_file=True)  # flags win
        if flag_given("ce_weight"):  # over the grid file's ce_weight too
            g.ce_weight = ce_weight
    else:
        g = Grid(build_config(config_path, overrides, {}), {}, [0], ce_weight)
    flag_axes = {"method": methods, "affinity": affinity, "norm": norm, "loss": loss_, "source": source, "weight": weight,
                 "pre": pre, "redundant": redundant, "unreliable": unreliable, "ce": ce_specs}
    add_flag_axes(g, flag_axes, extra_axes)
    if seeds is not None and seed is not None:
        raise ConfigError(f"give either --seeds or --seed, not both (--seed {seed} would be ignored; e.g. --seeds {seed},{seed + 1})")
    if seeds is not None:
        g.seeds = _seeds(seeds)
    elif seed is not None:
        g.seeds = [seed]
    if not g.axes and not grid_path:
        raise ConfigError("a grid needs at least one axis (e.g. --affinity gram,cosine or --grid FILE)")
    from .engine.distributed import torchrun_world

    if torchrun_world() is not None:
        raise ConfigError("akd grid starts its own workers (--jobs, --backend ray); run it without torchrun")
    if address and backend != "ray":
        raise ConfigError("--address is the Ray cluster of --backend ray; add --backend ray or drop --address")
    if check:
        from .experiment import check_grid

        click.echo("\n".join(check_grid(g, Path(out), force=force)))
        return
    df = run_grid(g, Path(out), jobs=jobs, progress=not quiet, log=lambda m: click.echo(m, err=True), share_teacher=share_teacher,
                  backend=backend, address=address, force=force)
    _print_table(df, Path(out))


def add_flag_axes(g, flag_axes: dict[str, str | None], extra_axes: tuple[str, ...]) -> None:
    """The axes of ``akd grid``'s comma-separated flags and ``--axis key=v1,v2`` into grid ``g`` (an axis given twice
    is an error), and ``--set`` of a key an axis decides refused."""
    from .experiment import OBJECTIVE_AXES, split_list

    for k, v in flag_axes.items():
        if v is None:
            continue
        if k in g.axes:
            raise ConfigError(f"axis '{k}' is given twice (grid file and --{k})")
        vals = split_list(v)
        if k == "weight":
            try:
                vals = [float(x) for x in vals]
            except ValueError:
                raise ConfigError(f"--weight {v!r}: weights must be numbers") from None
        g.axes[k] = vals
    for a in extra_axes:
        if "=" not in a:
            raise ConfigError(f"--axis {a!r}: expected key=v1,v2")
        k, v = a.split("=", 1)
        k = k.strip()
        if k in g.axes:
            raise ConfigError(f"axis '{k}' is given twice")
        g.axes[k] = [_auto(x) for x in split_list(v)]
    refuse_set_keys({"seed": "a grid runs the seeds of --seeds (or --seed)",
                     **{("objective" if k in OBJECTIVE_AXES else k.replace("-", "_")): f"'{k}' is a grid axis (each cell sets it)"
                        for k in g.axes}})


def flag_given(name: str) -> bool:
    """Whether option ``name`` of the current command was given on the command line (not its default)."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(name) is ParameterSource.COMMANDLINE


def _auto(x: str):
    for t in (int, float):
        try:
            return t(x)
        except ValueError:
            pass
    return x


@cli.command()
@click.option("--methods", default="ce,kd,rkd,cc,sp,pkt,vrm", show_default=True, help="Comma-separated presets.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@run_options
@click.option("--out", type=click.Path(file_okay=False), default="runs/compare", show_default=True, help="Comparison directory (re-run to resume).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Runs in parallel (processes).")
@click.option("--force", is_flag=True, help="Redo the runs in --out that were trained with another config (without it: an error).")
@click.option("--check", is_flag=True, help="Run every check (specs, data, teacher, taps, step memory, output folders) and print what would run; train and write nothing.")
def compare(methods, seeds, config_path, dataset, data_dir, dev, student, teacher, teacher_ckpt, teacher_epochs, epochs, batch_size,
            lr, seed, device, compile_, teacher_cache, max_memory, quiet, out, jobs, force, check):
    """Compare methods on equal footing: one teacher checkpoint, and per seed the same student init and data order.

    \b
    akd compare --methods ce,kd,rkd,cc,sp,pkt,vrm --seeds 0,1,2 --dataset fashion-mnist \\
                --teacher cnn_wide --student cnn_tiny --epochs 10
    """
    from .experiment import Grid, run_grid, split_list

    if seed is not None:  # run_options' --seed: a comparison runs every seed of --seeds
        raise ConfigError(f"akd compare takes --seeds (comma-separated), not --seed; use --seeds {seed}")
    refuse_set_keys({"seed": "a comparison runs the seeds of --seeds", "objective": "a comparison runs the methods of --methods"})
    overrides = dict(dataset=dataset, data_dir=data_dir, dev=dev, student=student, teacher=teacher, teacher_ckpt=teacher_ckpt,
                     teacher_epochs=teacher_epochs, epochs=epochs, batch_size=batch_size, lr=lr, device=device, compile=compile_, teacher_cache=teacher_cache, max_memory=max_memory)
    base = build_config(config_path, overrides, {})
    ms = split_list(methods)
    if not ms:
        raise ConfigError("--methods is empty; give e.g. --methods ce,kd,vrm")
    from . import METHODS

    for m in ms:
        METHODS.get(m)
    g = Grid(base, {"method": ms}, _seeds(seeds))
    if check:
        from .experiment import check_grid

        click.echo("\n".join(check_grid(g, Path(out), force=force)))
        return
    df = run_grid(g, Path(out), jobs=jobs, progress=not quiet, log=lambda m: click.echo(m, err=True), force=force)
    _print_table(df, Path(out))


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--baseline", help='A cell to compare every cell with, paired by seed (difference and paired t-test), '
                                 'e.g. "method=ce"; writes stats_vs_<cell>.md and marks the baseline in results.png.')
@click.option("--metric", type=click.Choice(["last_acc", "best_acc"]), default=None,
              help="Accuracy the --baseline comparison uses (default last_acc).")
def report(directory, baseline, metric):
    """Rebuild results.csv/md/png and curves.png of a grid or compare directory (reads its runs, trains nothing).

    \b
    akd report benchmarks/results/fmnist_compare --baseline method=ce
    """
    from .experiment import report as rebuild

    if metric is not None and baseline is None:
        raise ConfigError("--metric chooses the accuracy of the --baseline comparison; add --baseline CELL or drop --metric")
    df = rebuild(directory, baseline=baseline, metric=metric or "last_acc")
    _print_table(df, Path(directory))
    if baseline is not None:
        from .stats import paired_differences, stats_file, stats_markdown

        click.echo("")
        click.echo(stats_markdown(paired_differences(df, baseline, metric or "last_acc"), baseline, metric or "last_acc"))
        click.echo(f"stats: {stats_file(Path(directory), baseline, metric or 'last_acc')}")


# ------------------------------------------------------------------------------------------
# akd demo: the README's main job
# ------------------------------------------------------------------------------------------
DEMO = {  # = experiments/fmnist_evidence.toml, seed 0 (benchmarks/results); ~5 min on 2 CPU cores
    "dataset": "fashion-mnist(train_n=10000)",
    "teacher": "cnn_wide",
    "student": "cnn_tiny",
    "epochs": 6,
    "teacher_epochs": 10,
    "batch_size": 64,
    "methods": "ce,kd,vrm",
}


@cli.command()
@click.option("--dataset", default=DEMO["dataset"], show_default=True, help="Dataset spec.")
@click.option("--teacher", default=DEMO["teacher"], show_default=True, help="Teacher model (trained once, then cached).")
@click.option("--student", default=DEMO["student"], show_default=True, help="Student model.")
@click.option("--epochs", type=int, default=DEMO["epochs"], show_default=True, help="Student epochs.")
@click.option("--teacher-epochs", type=int, default=DEMO["teacher_epochs"], show_default=True, help="Teacher epochs.")
@click.option("--methods", default=DEMO["methods"], show_default=True, help="Methods to compare.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--data-dir", help="Folder with the Fashion-MNIST files.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Results folder (default: runs/demo; runs/demo-<tag> when the settings differ from the defaults, so "
                   "trying other settings never collides with the default demo).")
@click.option("--quiet", is_flag=True)
@click.option("--force", is_flag=True, help="Redo the runs in --out that were trained with another config (without it: an error).")
def demo(dataset, teacher, student, epochs, teacher_epochs, methods, seed, device, data_dir, out, quiet, force):
    """The main job: train (or reuse) a small teacher on Fashion-MNIST, distil a student with VRM,
    and compare it with the plain student (and Hinton KD) on equal footing."""
    from .engine import RunConfig
    from .experiment import Grid, run_grid, split_list

    base = RunConfig(dataset=dataset, teacher=teacher, student=student, epochs=epochs, teacher_epochs=teacher_epochs,
                     batch_size=DEMO["batch_size"], device=device, data_dir=data_dir, log_every=100).validate()
    t0 = time.perf_counter()
    if out is None:
        chosen = {"dataset": dataset, "teacher": teacher, "student": student, "epochs": epochs, "teacher_epochs": teacher_epochs,
                  "methods": methods, "seed": seed}
        defaults = {k: DEMO.get(k, 0) for k in chosen}
        tag = hashlib.sha1(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:8]
        out = "runs/demo" if chosen == defaults else f"runs/demo-{tag}"
    g = Grid(base, {"method": split_list(methods)}, [seed])
    with display(not quiet):
        df = run_grid(g, Path(out), progress=not quiet, log=lambda m: click.echo(m, err=True), force=force)
    _print_table(df, Path(out))
    fin = df[df["status"] == "finished"].set_index("method")
    if "vrm" in fin.index and "ce" in fin.index:
        d = float(fin.loc["vrm", "last_acc"]) - float(fin.loc["ce", "last_acc"])
        click.echo(f"VRM student vs plain student: {d:+.2f} points (last-epoch test accuracy, one seed; "
                   f"see benchmarks/results for multi-seed numbers)")
    click.echo(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
