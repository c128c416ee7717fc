"""Named taps for arbitrary ``nn.Module`` s (timm, torchvision, your own) via forward hooks.

:class:`TappedModel` wraps a module and makes its ``forward`` return the same dict
as akd's built-in models::

    tm = TappedModel(torchvision.models.resnet18(num_classes=10),
                     {"logits": "fc", "pooled": "avgpool", "map": "layer4"})
    out = tm(x)  # {"logits": [B,10], "pooled": [B,512], "map": [B,512,h,w]}

Each tap names a module path as in ``module.named_modules()`` (``"layer4"``,
``"features.7"``); ``""`` (or ``"output"`` when no submodule is called so) is the
wrapped module's own output.  ``pooled`` is flattened to ``[B, D]``; if
``pooled`` is not given but ``map`` is, ``pooled`` is the global average of
``map``.

Hooks are registered once, at construction; the tensors they capture live in a
dict that exists only during one call of :meth:`TappedModel.forward` (nothing is
kept between calls), and they are the module's own outputs (not detached), so
gradients flow through every tap.  Caveats: a module called several times in one
forward reports its last output; a tapped output that the model later modifies
in place (e.g. a BN followed by ``ReLU(inplace=True)``) is seen after the
modification, so tap the activation instead.

:func:`torchvision_model` builds a torchvision classifier with the right tap
paths; torchvision is imported lazily, only there (``pip install akd[vision]``).
"""

from __future__ import annotations

import difflib
import weakref
from typing import Any, Mapping

import torch
import torch.nn as nn

from ..errors import ConfigError, closest

OWN_OUTPUT = ("", "output")


def _first_tensor(value: Any, what: str) -> torch.Tensor:
    """The tensor of a module output (a tensor, or the first tensor of a tuple/list)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, torch.Tensor):
                return v
    raise ConfigError(f"{what} produced {type(value).__name__}, not a tensor; tap a module that returns a tensor")


def _unknown_path(path: str, tap: str, module: nn.Module, names: list[str]) -> ConfigError:
    near = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
    top = [n for n, _ in module.named_children()]
    shown = ", ".join(top[:30]) + (f", ... ({len(top)} in all)" if len(top) > 30 else "")
    hint = f"; closest: {', '.join(repr(n) for n in near)}" if near else ""
    return ConfigError(
        f"unknown module path '{path}' for tap '{tap}' in {type(module).__name__}{hint}; "
        f"top-level modules: {shown or 'none'} ('' or 'output' = the model's own output)"
    )


class TappedModel(nn.Module):
    """Wrap ``module`` so that ``forward`` returns ``{tap name: tensor}`` from forward hooks.

    Parameters
    ----------
    module:
        Any ``nn.Module``; its ``forward`` is called with the wrapper's arguments.
    taps:
        ``{tap name: module path}``, e.g. ``{"logits": "fc", "pooled": "avgpool",
        "map": "layer4"}``.  ``""``/``"output"`` = the module's own output.
    num_classes:
        Recorded as ``self.num_classes`` (otherwise read from ``logits`` on the
        first forward).
    example_input:
        If given, one forward in eval mode under ``no_grad`` fills
        ``feature_dims`` right away (see :meth:`probe`); otherwise they are
        filled by the first forward.

    Attributes: ``taps`` (tuple of tap names in the output), ``tap_paths``,
    ``feature_dims`` (``{"pooled": D, "map": C}`` as far as known), ``num_classes``.
    The wrapped module is ``self.module`` (its ``state_dict`` keys get a
    ``module.`` prefix).
    """

    def __init__(self, module: nn.Module, taps: Mapping[str, str], num_classes: int | None = None,
                 example_input: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ConfigError(f"TappedModel wraps an nn.Module, got {type(module).__name__}")
        if not isinstance(taps, Mapping) or not taps:
            raise ConfigError(f"TappedModel taps must be a non-empty dict {{tap name: module path}}, got {taps!r}")
        self.module = module
        modules = dict(module.named_modules())
        names = [n for n in modules if n]
        self.tap_paths: dict[str, str] = {}
        targets: dict[str, nn.Module] = {}
        for tap, path in taps.items():
            if not isinstance(tap, str) or not isinstance(path, str):
                raise ConfigError(f"TappedModel tap {tap!r}: {path!r} must map a name to a module path string")
            if path == "" or (path == "output" and "output" not in modules):
                key, target = "", module
            elif path in modules:
                key, target = path, modules[path]
            else:
                raise _unknown_path(path, tap, module, names)
            self.tap_paths[tap] = key
            targets[key] = target
        self.taps: tuple[str, ...] = tuple(self.tap_paths) + (
            ("pooled",) if "pooled" not in self.tap_paths and "map" in self.tap_paths else ()
        )
        self.num_classes: int | None = num_classes
        self.feature_dims: dict[str, int] = {}
        self._store: dict[str, Any] | None = None
        self._handles = []
        ref = weakref.ref(self)  # no reference cycle module -> hook -> wrapper
        for key, target in targets.items():
            self._handles.append(target.register_forward_hook(self._make_hook(ref, key)))
        if example_input is not None:
            self.probe(example_input)

    @staticmethod
    def _make_hook(ref: "weakref.ref[TappedModel]", key: str):
        def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
            owner = ref()
            if owner is not None and owner._store is not None:
                owner._store[key] = out

        return hook

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        store: dict[str, Any] = {}
        self._store = store
        try:
            self.module(*args, **kwargs)
        finally:
            self._store = None
        out: dict[str, torch.Tensor] = {}
        for tap, key in self.tap_paths.items():
            if key not in store:
                raise ConfigError(
                    f"tap '{tap}' -> module '{key}' produced no output during forward (the module is never called)"
                )
            t = _first_tensor(store[key], f"tap '{tap}' -> module '{key or '<output>'}'")
            if tap == "pooled":
                t = torch.flatten(t, 1)
            out[tap] = t
        store.clear()
        if "pooled" not in out and "map" in out:
            out["pooled"] = torch.flatten(out["map"], 2).mean(-1) if out["map"].dim() > 2 else out["map"]
        self._record_dims(out)
        return out

    def _record_dims(self, out: Mapping[str, torch.Tensor]) -> None:
        if "pooled" in out and "pooled" not in self.feature_dims:
            self.feature_dims["pooled"] = int(out["pooled"].shape[1])
        if "map" in out and "map" not in self.feature_dims and out["map"].dim() >= 2:
            self.feature_dims["map"] = int(out["map"].shape[1])
        if self.num_classes is None and "logits" in out and out["logits"].dim() == 2:
            self.num_classes = int(out["logits"].shape[1])

    @torch.no_grad()
    def probe(self, example_input: torch.Tensor) -> dict[str, int]:
        """Run one forward in eval mode (restoring the mode) to fill ``feature_dims``."""
        was_training = self.training
        self.eval()
        try:
            self.forward(example_input)
        finally:
            self.train(was_training)
        return dict(self.feature_dims)

    def remove_hooks(self) -> None:
        """Detach the forward hooks from the wrapped module (the wrapper stops working)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def extra_repr(self) -> str:
        return f"taps={self.tap_paths}"


# ----------------------------------------------------------------------------- torchvision

#: Tap paths of torchvision classifier families (prefix of the model name -> taps).
#: Families without a ``pooled`` entry get ``pooled`` = global average of ``map``.
TORCHVISION_TAPS: dict[str, dict[str, str]] = {
    "resnet": {"logits": "fc", "pooled": "avgpool", "map": "layer4"},
    "resnext": {"logits": "fc", "pooled": "avgpool", "map": "layer4"},
    "wide_resnet": {"logits": "fc", "pooled": "avgpool", "map": "layer4"},
    "regnet": {"logits": "fc", "pooled": "avgpool", "map": "trunk_output"},
    "shufflenet_v2": {"logits": "fc", "map": "conv5"},
    "mobilenet_v2": {"logits": "classifier", "map": "features"},
    "mobilenet_v3": {"logits": "classifier", "pooled": "avgpool", "map": "features"},
    "efficientnet": {"logits": "classifier", "pooled": "avgpool", "map": "features"},
    "convnext": {"logits": "classifier", "pooled": "classifier.1", "map": "features"},
    "vgg": {"logits": "classifier", "map": "features"},
}

VISION_HINT = "pip install akd[vision]"


def import_torchvision() -> Any:
    """Import torchvision or raise a one-line ConfigError with the install hint.

    Any failure counts (ImportError, but also the RuntimeError/OSError a
    torchvision built for another torch raises on import).
    """
    try:
        import torchvision  # noqa: PLC0415 - optional dependency, imported lazily on purpose
    except Exception as e:  # noqa: BLE001
        lines = str(e).strip().splitlines()
        detail = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
        raise ConfigError(f"torchvision models need torchvision: {VISION_HINT} (importing torchvision failed: {detail})") from None
    return torchvision


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the first ``nn.Conv2d`` (the stem) for one taking ``in_channels`` inputs."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.in_channels == in_channels:
                return
            if m.groups != 1:
                break
            new = nn.Conv2d(in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                            1, m.bias is not None, m.padding_mode)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, new)
            return
    raise ConfigError(f"cannot change in_channels of {type(model).__name__}: no plain Conv2d stem found")


def torchvision_model(name: str, num_classes: int = 1000, in_channels: int = 3,
                      taps: Mapping[str, str] | None = None, probe_size: int = 64, **kwargs: Any) -> TappedModel:
    """A torchvision classifier (``torchvision.models.get_model``) wrapped in :class:`TappedModel`.

    ``kwargs`` go to torchvision (e.g. ``weights="DEFAULT"``).  Tap paths come from
    :data:`TORCHVISION_TAPS` by name prefix unless ``taps`` is given; ``in_channels``
    replaces the stem conv.  ``feature_dims`` are probed with one
    ``[1, in_channels, probe_size, probe_size]`` forward (``probe_size=0`` skips it).
    Needs the optional extra: ``pip install akd[vision]``.
    """
    tv = import_torchvision()
    available = list(tv.models.list_models(module=tv.models)) if hasattr(tv.models, "list_models") else []
    if available and name not in available:
        near = closest(name, available)
        hint = f" (did you mean '{near}'?)" if near else ""
        raise ConfigError(f"unknown torchvision model '{name}'{hint}; valid choices: {', '.join(sorted(available))}")
    if taps is None:
        prefix = next((p for p in sorted(TORCHVISION_TAPS, key=len, reverse=True) if name.startswith(p)), None)
        if prefix is None:
            raise ConfigError(
                f"no default tap paths for torchvision model '{name}'; pass taps={{'logits': ..., 'map': ...}} "
                f"(known families: {', '.join(sorted(TORCHVISION_TAPS))})"
            )
        taps = TORCHVISION_TAPS[prefix]
    try:
        if hasattr(tv.models, "get_model"):  # torchvision >= 0.14
            model = tv.models.get_model(name, num_classes=num_classes, **kwargs)
        else:
            builder = getattr(tv.models, name, None)
            if not callable(builder):
                raise ConfigError(f"unknown torchvision model '{name}'")
            model = builder(num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"torchvision model '{name}': {str(e).strip().splitlines()[0]}") from None
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    example = torch.zeros(1, in_channels, probe_size, probe_size) if probe_size > 0 else None
    return TappedModel(model, taps, num_classes=num_classes, example_input=example)
