"""The ``dataset`` registry, in a leaf module: the data sets import it, and nothing here imports them."""

from ..registry import Registry

DATASETS = Registry("dataset")
