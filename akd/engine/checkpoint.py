"""Atomic files: checkpoints, JSON and CSV are written to a temp file in the same folder,
flushed and fsync'ed, then renamed over the target (POSIX ``rename`` is atomic), so a kill,
a full disk or a permission error never leaves a half-written file and never damages the
previous version."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from ..errors import AkdError, CheckpointError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_with(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it and rename it over ``path``: readers see the
    old file or the whole new one, never a part (a failure, e.g. disk full, leaves the old file and no temporary)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:  # mkstemp makes 0600 files; results and checkpoints get the usual umask permissions
            os.fchmod(fd, 0o666 & ~_UMASK)
        except OSError:  # pragma: no cover - file systems without permissions
            pass
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Serialise ``state`` with torch.save and write it atomically.

    Raises :class:`AkdError` on OSError (disk full, permissions); the previous file stays intact.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise AkdError(f"could not write checkpoint {path}: {e.strerror or e}; the previous checkpoint is intact") from None


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint; a missing, truncated or corrupt file raises :class:`CheckpointError`."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # zipfile/pickle/EOF errors of truncated files
        raise CheckpointError(f"checkpoint {p} is corrupt or truncated ({type(e).__name__}); delete it (a run then starts over) "
                              "or pass another file") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {p} does not hold an akd checkpoint")
    return state


def weights_digest(state_dict: Any) -> str:
    """SHA-1 (16 hex digits) of a state dict's names and exact tensor bytes: the identity of a set of weights
    (a run's initial student, the teacher it was distilled from)."""
    import hashlib

    h = hashlib.sha1()
    for k, v in state_dict.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
