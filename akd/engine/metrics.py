"""Metrics: running sums of the loss terms and accuracy on the device (no host sync per step), and evaluation."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..data import normalize
from ..errors import TrainingDiverged
from ..progress import Stage
from .device import autocast


class Accumulator:
    """Sums of loss terms, correct predictions and non-finite flags, kept on the device."""

    def __init__(self, names: list[str], device: torch.device):
        self.names = names
        self.sums = torch.zeros(len(names), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        self.seen = 0
        self.steps = 0
        self.first_bad = torch.full((len(names),), -1, device=device, dtype=torch.int64)

    def add(self, losses: dict[str, torch.Tensor], logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        vals = torch.stack([losses[n].detach().float() for n in self.names])
        finite = torch.isfinite(vals)
        self.sums += torch.where(finite, vals, torch.zeros_like(vals)).double()
        self.first_bad = torch.where(~finite & (self.first_bad < 0), torch.full_like(self.first_bad, step), self.first_bad)
        self.correct += (logits.detach().argmax(-1) == y).sum()
        self.seen += y.shape[0]
        self.steps += 1

    def check_finite(self) -> None:
        bad = self.first_bad.tolist()
        hits = [(s, n) for s, n in zip(bad, self.names) if s >= 0]
        if hits:
            step, _ = min(hits)
            terms = ", ".join(n for s, n in hits if s == step)
            raise TrainingDiverged(f"loss term(s) {terms} became NaN/inf at step {step}")

    def means(self) -> dict[str, float]:
        s = self.sums.tolist()
        n = max(1, self.steps)
        out = {k: v / n for k, v in zip(self.names, s)}
        out["acc"] = 100.0 * self.correct.item() / max(1, self.seen)
        return out

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums.cpu(), "correct": self.correct.cpu(), "seen": self.seen, "steps": self.steps,
                "first_bad": self.first_bad.cpu()}

    def load(self, st: dict[str, Any]) -> None:
        dev = self.sums.device
        self.sums = st["sums"].to(dev)
        self.correct = st["correct"].to(dev)
        self.first_bad = st["first_bad"].to(dev)
        self.seen, self.steps = st["seen"], st["steps"]


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x_u8: torch.Tensor, y: torch.Tensor, mean, std, *, batch_size: int,
             device: torch.device, amp: str = "auto", channels_last: bool = False) -> dict[str, float]:
    """Top-1/top-5 accuracy (%) and mean CE on a uint8 set that lives on ``device``.

    An evaluation that takes more than 2 s shows a bar on a terminal, erased when done (:class:`akd.progress.Stage`;
    nothing where the caller's scope says so: ``--quiet``, progress=False, ranks other than 0)."""
    was = model.training
    model.eval()
    correct1 = torch.zeros((), device=device, dtype=torch.int64)
    correct5 = torch.zeros((), device=device, dtype=torch.int64)
    loss = torch.zeros((), device=device, dtype=torch.float64)
    n = x_u8.shape[0]
    with Stage(f"evaluating {n:,} images", n, unit="images", transient=True, line=False, delay=2.0) as bar:
        for i in range(0, n, batch_size):
            xb = normalize(x_u8[i:i + batch_size], mean, std)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y[i:i + batch_size]
            with autocast(device, amp):
                logits = model(xb)["logits"].float()
            loss += F.cross_entropy(logits, yb, reduction="sum").double()
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            correct1 += (top[:, 0] == yb).sum()
            correct5 += (top == yb[:, None]).any(dim=1).sum()
            bar.advance(yb.shape[0])
    model.train(was)
    n = max(1, n)
    return {"top1": 100.0 * correct1.item() / n, "top5": 100.0 * correct5.item() / n, "loss": loss.item() / n}
