"""``csv``: ``metrics.csv`` in the run folder, one row per epoch (the columns of :func:`flat_metrics`), no dependency."""

from __future__ import annotations

import csv
from typing import Any, Mapping

from ._registry import LOGGERS
from .base import Logger, flat_metrics


@LOGGERS.register("csv")
class CsvLogger(Logger):
    """metrics.csv in the run folder: the epochs of metrics.jsonl as a table (rewritten from them on resume)."""

    def start(self, config: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
        self.file = open(self.run_dir / "metrics.csv", "w", newline="")
        self.writer: csv.DictWriter | None = None
        for rec in history:
            self.log_epoch(rec["epoch"], flat_metrics(rec))

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, fieldnames=list(metrics))
            self.writer.writeheader()
        self.writer.writerow(metrics)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
