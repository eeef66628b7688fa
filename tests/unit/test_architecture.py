"""The layers of include/ (docs/architecture.md): no package imports one that imports it back.

Read from the source (every `import` and `from ... import`, at any depth, typing-only ones too), so a
cycle is caught even where the imports would happen to run in an order that works.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

INCLUDE = PROJECT_ROOT / "include"


def package_of(module: str) -> str:
    """include.vault.store -> include.vault; a module directly in include/ is its own package."""
    return ".".join(module.split(".")[:2])


def imports_between_packages(root: Path) -> dict[str, dict[str, set[str]]]:
    """package -> package it imports -> the module-level edges that do it."""
    edges: dict[str, dict[str, set[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith(f"{root.name}.") and package_of(target) != package_of(module):
                    edges.setdefault(package_of(module), {}).setdefault(package_of(target), set()).add(
                        f"{module} -> {target}")
    return edges


def cycles(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def describe(edges: dict[str, dict[str, set[str]]], component: list[str]) -> str:
    return "; ".join(sorted(edge for a in component for b in component if b in edges.get(a, {})
                            for edge in edges[a][b]))


def test_no_package_of_include_imports_one_that_imports_it_back():
    edges = imports_between_packages(INCLUDE)
    assert edges, "no imports found: the scan is broken"
    found = cycles(edges)
    assert not found, "\n".join(f"{' <-> '.join(c)}: {describe(edges, c)}" for c in found)


def test_the_scan_finds_a_cycle_planted_in_a_copy(tmp_path):
    """The check itself can fail: two packages that import each other are reported, with the imports."""
    root = tmp_path / "include"
    for package, imported in (("low", "include.high.b"), ("high", "include.low.a")):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / ("a.py" if package == "low" else "b.py")).write_text(
            f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from {imported} import x\n")
    edges = imports_between_packages(root)
    assert cycles(edges) == [["include.high", "include.low"]]
    assert describe(edges, ["include.high", "include.low"]) == (
        "include.high.b -> include.low.a; include.low.a -> include.high.b")


def test_include_has_only_packages_at_its_top():
    loose = sorted(p.name for p in INCLUDE.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules beside the packages of include/ (docs/architecture.md says where each belongs): {loose}"
