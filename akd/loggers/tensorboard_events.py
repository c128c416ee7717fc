"""``tensorboard``: event files in ``<run>/tensorboard`` through ``torch.utils.tensorboard`` (needs the tensorboard package)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from ._registry import LOGGERS
from .base import Logger, require


@LOGGERS.register("tensorboard")
class TensorBoardLogger(Logger):
    """TensorBoard scalars (step = epoch) and the config as text; view with ``tensorboard --logdir runs``."""

    module, package = "torch.utils.tensorboard", "tensorboard"

    def start(self, config: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
        tb = require(self.module, self.package)
        # a resumed run drops what an earlier process logged after its last checkpointed epoch
        self.writer = tb.SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=len(history) + 1 if history else None)
        self.writer.add_text("config", "```\n" + json.dumps(dict(config), indent=1, default=str) + "\n```", 0)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
