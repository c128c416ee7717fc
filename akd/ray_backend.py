"""Grids on Ray: ``akd grid --backend ray [--address ADDRESS]``.

Every group of cells that :func:`akd.experiment.run_grid` would train in one local process (one
(cell, seed) run, or the runs of a seed sharing their teacher) becomes one Ray task running the same
worker function (:func:`akd.experiment.runners._run_group`), with ``num_gpus=1`` when the cluster has GPUs
(the task then sees exactly one GPU as ``cuda``) and ``num_cpus=1`` otherwise (one torch thread).
A teacher that has to be trained is trained by a Ray task too (once per distinct teacher, before
the cells).  The driver keeps everything else: validation before anything is written, the
resumable run directories ``<out>/cells/<cell>/seed<k>/`` (written by the tasks), and
``results.csv``/``results.md``/``results.png`` (rewritten after every finished group), so the files
equal those of the local backend and re-running either backend resumes the same grid.

On a multi-node cluster the grid directory and the teacher cache (``AKD_CACHE_DIR`` or
``--cache-dir``) must be on a file system every node sees at the same path; the tasks change to the
driver's working directory when it exists on their node (relative paths keep working).

Ray is an optional dependency (``pip install akd[ray]``) and imported only here, lazily.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError

INSTALL_HINT = "--backend ray needs Ray, which is not installed: pip install akd[ray]  (or: pip install ray)"


def require_ray():
    """The ``ray`` module, or a one-line ConfigError with the install hint."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def _call(cwd: str | None, fn: Callable, *args: Any) -> Any:
    """Task body: run ``fn(*args)`` in the driver's working directory (when this node has it)."""
    if cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    return fn(*args)


def _teacher_task(cfg_dict: dict[str, Any], quiet: bool) -> str:
    """Train (or reuse) the teacher of ``cfg_dict`` in the cache; return its model.pt path."""
    from .data import load_dataset
    from .engine.config import config_from_dict
    from .engine.teacher import resolve_teacher
    from .engine.trainer import train

    cfg = config_from_dict(cfg_dict)
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir, dev=cfg.dev, seed=0)
    _, info = resolve_teacher(cfg, ds, train=train, log=print, progress=not quiet)
    return info["teacher_path"]


class RayRunner:
    """Connects to (or starts) Ray and runs grid groups and teachers as tasks."""

    def __init__(self, address: str | None = None, *, device: str = "auto", log: Callable[[str], None] = print,
                 cpus_per_task: int = 1):
        ray = require_ray()
        self.ray = ray
        self.owned = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"address": address} if address else {}
            try:
                ray.init(**kw, log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = address or "a local Ray instance"
                raise ConfigError(f"--backend ray: cannot connect to {where} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
            self.owned = True
        gpus = float(ray.cluster_resources().get("GPU", 0))
        dev = (device or "auto").lower()
        if dev.startswith("cuda") and gpus < 1:
            raise ConfigError(f"--device {device}: the Ray cluster has no GPUs")
        self.num_gpus = 1 if (gpus >= 1 and dev != "cpu") else 0
        #: device override sent with each task: a GPU task sees exactly its own GPU as cuda
        self.device = "cuda" if self.num_gpus else None
        self.num_cpus = 1 if self.num_gpus else max(1, int(cpus_per_task))
        self.threads = None if self.num_gpus else self.num_cpus
        self.cwd = os.getcwd()
        self._call = ray.remote(_call)
        log(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {gpus:g} GPUs; "
            f"tasks use {self.num_gpus} GPU / {self.num_cpus} CPU each")

    def _options(self) -> dict[str, Any]:
        return {"num_gpus": self.num_gpus, "num_cpus": self.num_cpus, "max_retries": 0}

    def teacher(self, cfg, quiet: bool = True) -> str:
        """Train/reuse ``cfg``'s teacher in a task (the cache root resolved here, on the driver)."""
        from .engine.teacher import cache_root

        d = cfg.to_dict()
        d["cache_dir"] = str(Path(cache_root(cfg.cache_dir)).absolute())
        if self.device:
            d["device"] = self.device
        ref = self._call.options(**self._options()).remote(self.cwd, _teacher_task, d, quiet)
        return self.ray.get(ref)

    def map(self, fn: Callable, items: list[Any], args_of: Callable[[Any], tuple]) -> Iterator[tuple[Any, Any, BaseException | None]]:
        """Submit ``fn(*args_of(item))`` for every item; yield ``(item, result, error)`` as tasks finish."""
        ray = self.ray
        refs = {self._call.options(**self._options()).remote(self.cwd, fn, *args_of(it)): it for it in items}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for r in done:
                    try:
                        yield refs[r], ray.get(r), None
                    except Exception as e:  # noqa: BLE001 - a failed task (worker crash, RayTaskError): failed rows, not a lost grid
                        cause = getattr(e, "cause", None) or e
                        yield refs[r], None, cause
        except BaseException:
            for r in pending:
                try:
                    ray.cancel(r)
                except Exception:  # noqa: BLE001, S110 - best effort
                    pass
            raise

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
            self.owned = False
