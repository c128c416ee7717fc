"""The ``logger`` registry, in a leaf module: the backends import it, and nothing here imports them."""

from ..registry import Registry

#: experiment-tracking backends; ``build(spec, run_dir)`` (the run folder is supplied, the spec gives the options)
LOGGERS = Registry("logger", skip=1)
