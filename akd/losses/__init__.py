"""Matching losses (one file each): relational losses and the instance terms CE and KD."""

from ..registry import Registry

LOSSES = Registry("loss")

from .base import MatchLoss, masked_mean  # noqa: E402
from . import mse, l1, smooth_l1, kl, frobenius, cosine, ce, kd  # noqa: E402,F401
from . import pearson, dkd, edge_huber  # noqa: E402,F401

__all__ = ["LOSSES", "MatchLoss", "masked_mean"]
