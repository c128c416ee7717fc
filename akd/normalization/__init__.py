"""Normalisations of relations along their relation axis (one file each)."""

from ..registry import Registry

NORMALIZATIONS = Registry("normalization")

from .base import Normalization  # noqa: E402
from . import none, l2, zs, softmax, l1, mean  # noqa: E402,F401

__all__ = ["NORMALIZATIONS", "Normalization"]
