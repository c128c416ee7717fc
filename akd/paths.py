"""Where akd keeps what it caches (teachers, teacher-view tables, downloaded data): one owner for the location.

``cache_root(folder)``: ``folder`` when given (a run's ``cache_dir``), else ``$AKD_CACHE_DIR``, else
``$XDG_CACHE_HOME/akd``, else ``~/.cache/akd``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(folder: str | None = None) -> Path:
    if folder:
        return Path(folder)
    if os.environ.get("AKD_CACHE_DIR"):
        return Path(os.environ["AKD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "akd"
