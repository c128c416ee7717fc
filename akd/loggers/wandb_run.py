"""``wandb``: a Weights & Biases run per run folder (needs the wandb package; ``mode='offline'`` needs no account)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ._registry import LOGGERS
from .base import Logger, require


@LOGGERS.register("wandb")
class WandbLogger(Logger):
    """A W&B run named after the run folder, the config as its config, epoch metrics as its history (step = epoch).

    ``project``: the W&B project; ``mode``: online, offline (files under ``<run>/wandb``, ``wandb sync`` later) or disabled.
    Needs a wandb that knows ``reinit="create_new"`` (several runs open at once in one process)."""

    module = package = "wandb"

    def __init__(self, run_dir: Path, project: str = "akd", mode: str | None = None):
        super().__init__(run_dir)
        self.project, self.mode = project, mode

    def start(self, config: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
        wandb = require(self.module, self.package)
        self.run = wandb.init(project=self.project, name=self.run_dir.name, dir=str(self.run_dir), config=dict(config),
                              mode=self.mode, reinit="create_new")  # the students of a shared group: a run each

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=epoch)

    def close(self) -> None:
        self.run.finish()
