"""The layout rules of the code base, as tests, so later work cannot regress them.

* ``ls oracle/`` reads as the data flow: at most 8 loose modules beside the packages
  (``__init__`` and ``__main__`` not counted);
* no module over 500 lines;
* no import cycle among ``oracle`` modules, counting function-local imports
  (imports under ``if TYPE_CHECKING:`` are for the type checker only and excluded).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "oracle"
MAX_LOOSE_MODULES = 8
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def oracle_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below ``node``, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child)


def import_edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``oracle`` modules ``name`` imports (a ``from pkg import mod`` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        edges.update(t for t in targets if t in modules and t != name)
    return edges


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_find_cycles_sees_a_cycle_through_a_local_import(tmp_path: Path) -> None:
    """The checker itself: a function-local import closes a cycle; TYPE_CHECKING does not."""
    source = {
        "a": "import b\n",
        "b": "def f():\n    import c\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import d\nimport a\n",
        "d": "import c\n",
    }
    modules = {name: tmp_path / f"{name}.py" for name in source}
    for name, text in source.items():
        modules[name].write_text(text)
    graph = {name: import_edges(name, path, modules) for name, path in modules.items()}
    assert graph["c"] == {"a"}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_among_oracle_modules() -> None:
    modules = oracle_modules()
    graph = {name: import_edges(name, path, modules) for name, path in modules.items()}
    assert find_cycles(graph) == []


def test_no_module_over_500_lines() -> None:
    long = {
        name: n
        for name, path in oracle_modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_oracle_top_level_reads_as_the_data_flow() -> None:
    loose = sorted(
        p.name for p in ROOT.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}
    )
    assert len(loose) <= MAX_LOOSE_MODULES, loose
    stages = {"bitcoin", "sources", "agreement", "store", "index", "publish", "peers", "monitor"}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert stages <= packages
