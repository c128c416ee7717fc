"""One small generic registry for every family of named parts.

Families (affinity, normalization, loss, method, model, dataset) each own a
:class:`Registry`.  Parts register by decorator with a name, aliases and a
one-line doc; the formula lives in the part's docstring.  Anything that composes
parts (objectives, the CLI, grids, configs) goes through :meth:`Registry.build`
with a *spec*:

* a name: ``"rbf"``
* a call-like string with keyword parameters: ``"rbf(gamma=0.4,order=2)"``
* a dict: ``{"name": "rbf", "gamma": 0.4}``

Unknown names, unknown parameters and ill-typed values raise
:class:`akd.errors.ConfigError` naming the bad value, the valid choices and the
closest match.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Union

from .errors import ConfigError, closest, unknown

Spec = Union[str, Mapping[str, Any]]

_CALL = re.compile(r"^\s*([A-Za-z_][\w\-.]*)\s*(?:\((.*)\))?\s*$", re.S)


def parse_spec(spec: Spec, family: str = "part") -> tuple[str, dict[str, Any]]:
    """Split a spec into ``(name, params)``.

    >>> parse_spec("rbf(gamma=0.4,order=None)")
    ('rbf', {'gamma': 0.4, 'order': None})
    """
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ConfigError(f"{family} spec {dict(spec)!r} has no 'name' key")
        params = {k: v for k, v in spec.items() if k != "name"}
        return str(spec["name"]), params
    if not isinstance(spec, str):
        raise ConfigError(f"{family} spec must be a name, 'name(k=v,...)' or a dict, got {spec!r}")
    m = _CALL.match(spec)
    if not m:
        raise ConfigError(f"cannot parse {family} spec '{spec}'; expected 'name' or 'name(key=value,...)'")
    name, body = m.group(1), m.group(2)
    params: dict[str, Any] = {}
    if body and body.strip():
        src = f"f({body})"
        try:
            call = ast.parse(src, mode="eval").body
        except SyntaxError:
            return name, _loose_params(body, family, spec)
        if not isinstance(call, ast.Call) or call.args:
            raise ConfigError(f"{family} spec '{spec}': parameters must be given as key=value")
        for kw in call.keywords:
            if kw.arg is None:
                raise ConfigError(f"{family} spec '{spec}': '**' is not allowed")
            params[kw.arg] = _literal(kw.value, src)
    return name, params


def split_top_level(body: str) -> list[str]:
    """``body`` split at the commas outside quotes and brackets."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(body):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return parts + [body[start:]]


def _loose_params(body: str, family: str, spec: str) -> dict[str, Any]:
    """Parameters that are not Python syntax: ``key=value`` pairs split at top-level commas, each value read as a
    literal when it is one and otherwise kept as its stripped text -- so unquoted paths work
    (``image-folder(root=/data/my images,size=224)`` gives ``root='/data/my images'``); quote a value that holds a
    comma."""
    params: dict[str, Any] = {}
    for part in split_top_level(body):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key.isidentifier() or not value:
            raise ConfigError(f"cannot parse parameters of {family} spec '{spec}'; expected key=value pairs")
        try:
            params[key] = _literal(ast.parse(value, mode="eval").body, value)
        except SyntaxError:
            params[key] = value
    return params


def _literal(node: ast.AST, src: str) -> Any:
    """A literal value; anything else (a bare identifier ``t=abc``, a relative path ``root=data/imagenet``) is read
    as its source text, a string."""
    if isinstance(node, ast.Name):
        key = node.id.lower()
        if key in ("inf", "nan"):
            return float(key)
        return {"true": True, "false": False, "none": None, "null": None}.get(key, node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Name):
        inner = _literal(node.operand, src)
        if isinstance(inner, float):
            return -inner if isinstance(node.op, ast.USub) else inner
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.get_source_segment(src, node) or ast.unparse(node)


def format_spec(name: str, params: Mapping[str, Any]) -> str:
    """Inverse of :func:`parse_spec` (for names of runs and terms)."""
    if not params:
        return name
    return f"{name}(" + ",".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params.items()) + ")"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + "|".join(map(str, typing.get_args(tp)))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to annotation ``tp`` or raise ``TypeError``."""
    if tp is inspect.Parameter.empty or tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a)
            except TypeError:
                pass
        raise TypeError
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if tp is float:  # inf/nan are refused: no parameter of akd means anything with them
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    if origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            return origin(value)
        raise TypeError
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise TypeError


@dataclass
class Param:
    name: str
    default: Any
    annotation: Any

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        t = _type_name(self.annotation) if self.annotation is not inspect.Parameter.empty else "any"
        return f"{self.name}: {t}" + ("" if self.required else f" = {self.default!r}")


@dataclass
class Entry:
    """One registered part."""

    name: str
    obj: Callable[..., Any]
    family: str
    aliases: tuple[str, ...] = ()
    doc: str = ""
    params: dict[str, Param] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def formula(self) -> str:
        """The full docstring (formula, source, conventions)."""
        return inspect.cleandoc(self.obj.__doc__ or "")

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in params.items():
            p = self.params.get(k)
            if p is None:
                valid = ", ".join(self.params) or "none"
                near = closest(k, self.params)
                hint = f" (did you mean '{near}'?)" if near else ""
                raise ConfigError(f"{self.family} '{self.name}' has no parameter '{k}'{hint}; valid parameters: {valid}")
            try:
                out[k] = coerce(v, p.annotation)
            except TypeError:
                why = "finite" if isinstance(v, float) and not math.isfinite(v) else _type_name(p.annotation)
                raise ConfigError(f"{self.family} '{self.name}': parameter {k}={v!r} is not {why}") from None
        missing = [p.name for p in self.params.values() if p.required and p.name not in out]
        if missing:
            raise ConfigError(f"{self.family} '{self.name}' needs parameter(s): {', '.join(missing)}")
        return out

    def signature(self) -> str:
        return ", ".join(p.describe() for p in self.params.values())


def _params_of(obj: Callable[..., Any], skip: int) -> dict[str, Param]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # pragma: no cover - unresolved forward refs
        hints = {}
    out = {}
    for i, (n, p) in enumerate(sig.parameters.items()):
        if i < skip + inspect.isclass(obj) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):  # a class's __init__: self too
            continue
        out[n] = Param(n, p.default, hints.get(n, p.annotation))
    return out


class Registry:
    """Named parts of one family.

    ``skip`` is the number of leading positional arguments of a registered
    factory that :meth:`build` supplies itself (e.g. a model's ``num_classes``)
    and that are therefore not spec parameters.
    """

    def __init__(self, family: str, skip: int = 0):
        self.family = family
        self.skip = skip
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] | list[str] = (), doc: str | None = None, **meta: Any):
        """Decorator registering a class or factory under ``name``."""

        def deco(obj):
            self.add(name, obj, aliases=aliases, doc=doc, **meta)
            return obj

        return deco

    def add(self, name: str, obj: Callable[..., Any], *, aliases=(), doc: str | None = None, **meta: Any) -> Entry:
        for n in (name, *aliases):
            if n in self._entries or n in self._aliases:
                raise ValueError(f"{self.family} '{n}' is registered twice")
        if doc is None:
            lines = inspect.cleandoc(obj.__doc__ or "").splitlines()
            doc = lines[0] if lines else ""
        e = Entry(name, obj, self.family, tuple(aliases), doc, _params_of(obj, self.skip), dict(meta))
        self._entries[name] = e
        for a in aliases:
            self._aliases[a] = name
        return e

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def get(self, name: str) -> Entry:
        key = self._aliases.get(name, name)
        if key not in self._entries:
            raise unknown(self.family, name, list(self._entries) + list(self._aliases))
        return self._entries[key]

    def resolve(self, spec: Spec) -> tuple[Entry, dict[str, Any]]:
        """Parse and type-check a spec without building it."""
        name, params = parse_spec(spec, self.family)
        entry = self.get(name)
        return entry, entry.check_params(params)

    def build(self, spec: Spec, *args: Any, **overrides: Any) -> Any:
        """Build the part a spec names; ``args`` fill the ``skip`` leading arguments."""
        name, params = parse_spec(spec, self.family)
        entry = self.get(name)
        return entry.obj(*args, **entry.check_params({**params, **overrides}))  # required ones may come from either

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {self.names()})"


def require(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``cond`` (for parameter validation in constructors)."""
    if not cond:
        raise ConfigError(message)
