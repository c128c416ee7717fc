"""Device selection and the per-device execution settings (autocast, channels_last)."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..errors import ConfigError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU.  ``cuda`` without a GPU is a ConfigError."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"--device {spec!r}: unknown device; valid choices: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec}: no CUDA GPU is available here; use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) visible")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {spec!r}: unsupported device; valid choices: auto, cpu, cuda, cuda:N")
    return dev


def autocast(device: torch.device, amp: str):
    """bf16 autocast (fp32 master weights) on CUDA when ``amp`` is auto/bf16; nothing on CPU unless bf16."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def use_channels_last(device: torch.device, setting: str) -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")
