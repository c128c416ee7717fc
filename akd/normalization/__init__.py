"""Normalisations of relations along their relation axis (one file each)."""

from ._registry import NORMALIZATIONS
from .base import Normalization
from . import none, l2, zs, softmax, l1, mean  # noqa: F401

__all__ = ["NORMALIZATIONS", "Normalization"]
