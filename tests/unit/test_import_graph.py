"""No import cycle anywhere in src/stoker: every import counts, in functions and under
TYPE_CHECKING too, so no module is kept alive by an import it dodges."""

from __future__ import annotations

import ast
from pathlib import Path

import stoker

SRC = Path(stoker.__file__).parent


def _module_name(path: Path) -> str:  # a path under src/ -> its dotted module name
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    extensions = {  # compiled modules (stoker._cmix): leaves of the graph
        _module_name(p.with_name(p.name.split(".")[0] + ".py")) for p in SRC.rglob("*.so")
    }
    graph: dict[str, set[str]] = {name: set() for name in set(modules) | extensions}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` imports the module pkg.sub when there is one
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in graph else node.module
                    for a in node.names
                ]
            graph[name].update(t for t in targets if t in graph and t != name)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_of_stoker_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"
