"""akd: relation-based (affinity) knowledge distillation.

Every relational objective = affinity × normalisation × matching loss (Li & Maki); VRM,
RKD, CC, SP, PKT, KD and CE are presets (combinations) run through one engine.
"""

from .affinity import AFFINITIES
from .errors import AkdError, ConfigError
from .losses import LOSSES
from .methods import METHODS
from .normalization import NORMALIZATIONS
from .objective import Objective, Term, build_objective
from .registry import Registry

__version__ = "0.1.0"

__all__ = [
    "AFFINITIES", "NORMALIZATIONS", "LOSSES", "METHODS", "Registry", "Objective", "Term",
    "build_objective", "AkdError", "ConfigError", "__version__",
]
