"""The ``normalization`` registry, in a leaf module: the parts import it, and nothing here imports the parts."""

from ..registry import Registry

NORMALIZATIONS = Registry("normalization")
