"""Method presets: data, not code.  Each ``<name>.toml`` holds ``doc``, ``source`` and ``[[terms]]``.

``METHODS.build("rkd")`` returns a fresh copy of the preset's term list; objectives are built
from it by :func:`akd.build_objective`.  Adding a preset = adding a TOML file here.
"""

from __future__ import annotations

import copy
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - python < 3.11
    import tomli as tomllib

from ..registry import Registry

METHODS = Registry("method")
PRESET_DIR = Path(__file__).parent


def _preset(path: Path):
    data = tomllib.loads(path.read_text())
    terms = data["terms"]

    def factory():
        return copy.deepcopy(terms)

    factory.__doc__ = f"{data['doc']}\n\nSource: {data.get('source', '-')}"
    return factory, data


ORDER = ("ce", "kd", "rkd", "cc", "sp", "pkt", "vrm", "vrm-zs-edge")
for _name in ORDER + tuple(sorted(p.stem for p in PRESET_DIR.glob("*.toml") if p.stem not in ORDER)):
    _f, _data = _preset(PRESET_DIR / f"{_name}.toml")
    METHODS.add(_name, _f, doc=_data["doc"], terms=_data["terms"], source=_data.get("source", "-"))

__all__ = ["METHODS"]
