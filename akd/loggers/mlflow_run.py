"""``mlflow``: an MLflow run per run folder (needs the mlflow package; a local ``file:`` store needs no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ._registry import LOGGERS
from .base import Logger, flat_config, require


@LOGGERS.register("mlflow")
class MlflowLogger(Logger):
    """An MLflow run named after the run folder: the config as parameters, epoch metrics as metrics (step = epoch).

    ``tracking_uri``: the store (default: MLflow's own, ``MLFLOW_TRACKING_URI`` or ``./mlruns``); ``experiment``: its name.
    Through ``MlflowClient``, so the students of a shared-teacher group log to their own runs at once."""

    module = package = "mlflow"

    def __init__(self, run_dir: Path, tracking_uri: str | None = None, experiment: str = "akd"):
        super().__init__(run_dir)
        self.tracking_uri, self.experiment = tracking_uri, experiment

    def start(self, config: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
        mlflow = require(self.module, self.package)
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        exp = self.client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
        self.run_id = self.client.create_run(exp_id, run_name=self.run_dir.name).info.run_id
        for k, v in flat_config(config).items():
            self.client.log_param(self.run_id, k, str(v)[:500])  # MLflow's limit on a parameter value

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.client.log_metric(self.run_id, k, v, step=epoch)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
