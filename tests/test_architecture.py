"""Layering of the code base: no import cycles (function-local imports included), the core names no plugin,
and the core alone (every other distribution switched off) registers no method.

Run as a script for a report: ``python tests/test_architecture.py`` prints the import graph's cycles.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "tokcompress": ROOT / "tokcompress",
    "tokcompress_baselines": ROOT / "plugins" / "baselines" / "tokcompress_baselines",
    "tokcompress_d2pruner": ROOT / "plugins" / "d2pruner" / "tokcompress_d2pruner",
    "tokcompress_grounding": ROOT / "plugins" / "grounding" / "tokcompress_grounding",
    "tokcompress_registry": ROOT / "registry" / "tokcompress_registry",
}
PLUGIN_PACKAGES = set(PACKAGES) - {"tokcompress"}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of every package of this repository."""
    out = {}
    for top, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((top, *parts))] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of this repository `name` imports anywhere in its file (function-local imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never executed
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names]
            targets = names if all(n in known for n in names) else [base, *names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return found - {name} - own  # a package is initialised before its modules: importing it again is no cycle


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    """Edges module -> imported module, plus the package ``__init__`` files that importing it runs first."""
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges = set()
        for target in imports(name, path, known):
            edges.add(target)
            parts = target.split(".")
            edges |= {".".join(parts[:i]) for i in range(1, len(parts))} - own - {name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_core_never_imports_a_plugin_package():
    graph = import_graph()
    leaks = {m: sorted(t for t in targets if t.split(".")[0] in PLUGIN_PACKAGES)
             for m, targets in graph.items() if m.split(".")[0] == "tokcompress"}
    assert {m: t for m, t in leaks.items() if t} == {}


def test_core_alone_registers_no_method(monkeypatch):
    """With every other distribution switched off, the core has its generic stages and no method."""
    import tokcompress.plugins
    from tokcompress.catalog import get_catalog

    monkeypatch.setenv(tokcompress.plugins.AUTOLOAD_ENV, "1")
    tokcompress.plugins.reset()
    catalog = get_catalog()
    assert catalog.presets == {} and catalog.profiles == {} and catalog.entries("suite") == {}
    assert catalog.entries("model_source") == {}
    providers = {e.provider for kind in catalog.components.values() for e in kind.values()}
    assert providers == {"core (tokcompress)"}
    assert set(catalog.entries("command")) == {"plugins", "presets", "schema", "validate", "ablate", "report", "generate"}
    assert set(catalog.placements) == {"none", "pre_llm", "layer", "vision"}


if __name__ == "__main__":
    found = cycles(import_graph())
    print("\n".join(" -> ".join(c) for c in found) or f"no import cycles among {len(modules())} modules")
    raise SystemExit(1 if found else 0)
