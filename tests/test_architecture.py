"""The shape of the code: no import cycle in akd/ (module-level or inside functions), leaf registries, one cache root."""

from __future__ import annotations

import ast
from pathlib import Path

AKD = Path(__file__).resolve().parents[1] / "akd"


def import_graph() -> dict[str, set[str]]:
    """Module -> akd modules it imports anywhere (top level or inside a function)."""
    mods = {}
    for f in AKD.rglob("*.py"):
        parts = list(f.relative_to(AKD.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - node.level + 1] if node.level else []
                tgt = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{tgt}.{a.name}" for a in node.names if f"{tgt}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [tgt, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[m] |= {t for t in targets if t in mods and t != m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_akd():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_parts_import_their_registry_leaf_not_their_package():
    offenders = []
    for pkg, name in (("affinity", "AFFINITIES"), ("normalization", "NORMALIZATIONS"), ("losses", "LOSSES"),
                      ("schedules", "SCHEDULES"), ("data", "DATASETS")):
        for f in (AKD / pkg).glob("*.py"):
            if f"from . import {name}" in f.read_text():
                offenders.append(str(f.relative_to(AKD)))
    assert offenders == []


def test_no_project_wide_e402_ignore():
    text = (AKD.parent / "pyproject.toml").read_text()
    ignore_line = next(line for line in text.splitlines() if line.startswith("ignore"))
    assert "E402" not in ignore_line


def test_data_downloads_honour_akd_cache_dir(monkeypatch, tmp_path):
    """AKD_CACHE_DIR moves the data cache too (it used to move only the teacher cache)."""
    from akd.data.base import search_dirs
    from akd.engine.teacher import cache_root as teacher_cache_root

    monkeypatch.setenv("AKD_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("AKD_DATA_DIR", raising=False)
    assert tmp_path / "c" / "cifar-100" in search_dirs("cifar-100")
    assert teacher_cache_root() == tmp_path / "c"


def long_functions(folder: Path, limit: int) -> list[str]:
    """``file:function (lines)`` for every function or method in ``folder``'s modules longer than ``limit`` lines."""
    out = []
    for f in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit:
                out.append(f"{f.name}:{node.name} ({node.end_lineno - node.lineno + 1})")
    return out


def test_no_function_in_the_engine_is_over_60_lines():
    """The engine reads in screens: every function fits one (issue 13)."""
    assert long_functions(AKD / "engine", 60) == []
