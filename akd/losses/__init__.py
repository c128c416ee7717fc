"""Matching losses (one file each): relational losses and the instance terms CE and KD."""

from ._registry import LOSSES
from .base import MatchLoss, masked_mean
from . import mse, l1, smooth_l1, kl, frobenius, cosine, ce, kd  # noqa: F401
from . import pearson, dkd, edge_huber  # noqa: F401

__all__ = ["LOSSES", "MatchLoss", "masked_mean"]
