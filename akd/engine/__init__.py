"""The one shared training engine (see :mod:`akd.engine.trainer`)."""

from .config import RunConfig, config_from_dict, load_config
from .teacher import list_teachers, resolve_teacher, teacher_dir
from .metrics import evaluate
from .runs import RunDir
from .trainer import RunInterrupted, build_context, train

__all__ = ["RunConfig", "config_from_dict", "load_config", "train", "build_context", "evaluate", "RunDir",
           "RunInterrupted", "resolve_teacher", "list_teachers", "teacher_dir"]
