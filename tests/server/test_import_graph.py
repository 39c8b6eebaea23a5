"""The server's packages form a one-way graph: no two packages (or top-level modules) import each other.

A cycle between packages is how assembly code creeps into leaf packages (see STYLE.md, lesson 16).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"


def _unit(module: str) -> str | None:
    """`server.a.b` -> `a`: the package or top-level module a module belongs to."""
    parts = module.split(".")
    if parts[0] != "server" or len(parts) < 2:
        return None
    name = parts[1]
    # `from server import __version__` names an attribute, not a unit.
    return name if (SERVER / name).is_dir() or (SERVER / f"{name}.py").is_file() else None


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:  # `from server import x` names a unit too
                if node.module == "server":
                    yield f"server.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def dependency_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SERVER.rglob("*.py"):
        relative = path.relative_to(SERVER.parent).with_suffix("")
        unit = _unit(".".join(relative.parts))
        if unit is None or unit == "__init__":
            continue
        targets = graph.setdefault(unit, set())
        targets.update(t for t in map(_unit, _imports(path)) if t is not None and t != unit and t != "__init__")
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that returns to its start, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle is not None:
            return cycle
    return None


def test_the_server_packages_import_one_way() -> None:
    cycle = find_cycle(dependency_graph())
    assert cycle is None, "packages import each other: " + " -> ".join(cycle or ())


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_leaf_packages_do_not_reach_into_assembly() -> None:
    graph = dependency_graph()
    for leaf in ("batching", "runtime", "telemetry", "routing"):
        assert not graph.get(leaf, set()) & {"versions", "repository", "traffic", "app", "core"}, leaf
