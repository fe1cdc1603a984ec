"""The import graph between xlink's packages has no cycle, and ``xlink.errors`` is a leaf.

Read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ... import``
of every module under xlink/, wherever it is (module level, inside a function, under
``TYPE_CHECKING``), is an edge from the module's unit to the imported module's unit. A unit is a
subpackage (``xlink.audit``) or a top-level module (``xlink.errors``); ``xlink`` itself (its
``__init__``) is one too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import xlink

ROOT = Path(xlink.__file__).parent

#: What xlink.errors may import: the leaf of machine-readable codes its exceptions carry.
ERRORS_MAY_IMPORT = frozenset({"xlink.error_codes"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _resolve(target: str, modules: Mapping[str, Path]) -> str | None:
    """The xlink module ``target`` names (``pkg.mod.Name`` -> ``pkg.mod``), or None."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _imports(module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # pkg.name is a submodule, or resolves to pkg (a name defined in pkg)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "xlink" or name.startswith("xlink."):
                resolved = _resolve(name, modules)
                if resolved is not None:
                    yield resolved


def unit_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {_unit(m): set() for m in modules}
    for module, path in modules.items():
        for target in _imports(module, path, modules):
            if _unit(target) != _unit(module):
                graph[_unit(module)].add(_unit(target))
    return graph


def module_edges(source_unit: str, target_unit: str) -> list[str]:
    """Which imports make the edge ``source_unit -> target_unit`` (for failure messages)."""
    modules = _modules()
    return sorted(
        f"{m} -> {t}"
        for m, p in modules.items()
        if _unit(m) == source_unit
        for t in _imports(m, p, modules)
        if _unit(t) == target_unit
    )


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_known_packages() -> None:
    graph = unit_graph()
    for unit in ("xlink", "xlink.errors", "xlink.audit", "xlink.protocol", "xlink.cli"):
        assert unit in graph
    assert "xlink.errors" in graph["xlink.audit"]
    assert "xlink.protocol" in graph["xlink.transport"]


def test_errors_is_a_leaf() -> None:
    graph = unit_graph()
    assert graph["xlink.errors"] <= ERRORS_MAY_IMPORT, [
        edge
        for t in graph["xlink.errors"] - ERRORS_MAY_IMPORT
        for edge in module_edges("xlink.errors", t)
    ]
    for unit in ERRORS_MAY_IMPORT:
        assert graph[unit] == set(), module_edges(unit, next(iter(graph[unit])))


def test_nothing_imports_errors_back_in_a_cycle() -> None:
    assert not any("xlink.errors" in c for c in cycles(unit_graph()))


def test_no_cycle_between_packages() -> None:
    graph = unit_graph()
    found = cycles(graph)
    detail = {
        " <-> ".join(c): [e for a in c for b in c if b in graph[a] for e in module_edges(a, b)]
        for c in found
    }
    assert not found, detail


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
