"""The server's own modules import each other without circles, and at the top of the file.

An import inside a function that reaches a sibling module is how a circle hides
(models.py once imported control/detect.py and upscalers.py that way, and both
imported models.py back). This reads the sources with ``ast`` (nothing is
imported), builds the graph of the package's imports of itself, and checks both.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "paintwire.server"
SOURCE = ROOT / "server"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The package modules an ``import from`` names (a name may be a submodule)."""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> tuple[set[str], list[str]]:
    """(every package module imported, the imports written inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    inner: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue  # for annotations only: never imported at run time
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.ImportFrom):
                names = _resolve(module, path, child)
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            own = [n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")]
            top.update(own)
            if own and nested:
                inner.append(f"line {child.lineno}: {ast.unparse(child)}")
            visit(child, nested)

    visit(tree, False)
    return top, inner


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    inner: dict[str, list[str]] = {}
    for name, path in modules.items():
        top, nested = _imports(name, path)
        graph[name] = {n for n in top if n in modules and n != name}
        if nested:
            inner[name] = nested
    return graph, inner


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
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

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_the_graph_sees_the_diffusion_modules() -> None:
    graph, _ = _graph()
    models = f"{PACKAGE}.engines.diffusion.models"
    assert f"{PACKAGE}.engines.diffusion.control.detect" in graph[models]
    assert f"{PACKAGE}.engines.diffusion.upscalers" in graph[models]


def test_no_import_circles() -> None:
    graph, _ = _graph()
    # A package's __init__ importing its own modules and a module importing its package's
    # __init__ is how packages work, not a circle between two jobs.
    plain = {m: {d for d in deps if not (m.startswith(d + ".") or d.startswith(m + "."))} for m, deps in graph.items()}
    assert _cycles(plain) == []


@pytest.mark.parametrize("package", ["engines.diffusion"])
def test_no_imports_of_siblings_inside_functions(package: str) -> None:
    _, inner = _graph()
    prefix = f"{PACKAGE}.{package}"
    hidden = {m: lines for m, lines in inner.items() if m.startswith(prefix)}
    assert hidden == {}


def test_the_check_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
