"""The package's import graph, read from the source with ``ast`` (nothing is imported):

(a) the module-level imports inside ``spikingrnn`` form no cycle (imports inside functions run later
    and are not edges; neither are ``if TYPE_CHECKING:`` blocks);
(b) no module under ``spikingrnn.ops.triton`` imports anything under ``spikingrnn.ops.cpu``, at any
    level (functions included): the backends share code through backend-neutral modules;
(c) no module under ``spikingrnn.ops.cpu`` or ``spikingrnn.ops.triton`` imports
    ``spikingrnn.ops.reference``, at any level, except the self-checks in :data:`REFERENCE_ALLOWED`:
    editing the oracle must not edit a backend.

``test_the_checks_find_what_they_look_for`` runs the same checks on a small package with a cycle and
both forbidden imports, so that the checks themselves are tested.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import spikingrnn

PACKAGE = Path(spikingrnn.__file__).parent
TRITON = "spikingrnn.ops.triton"
CPU = "spikingrnn.ops.cpu"
REFERENCE = "spikingrnn.ops.reference"
# module -> why it may import the reference backend
REFERENCE_ALLOWED = {
    "spikingrnn.ops.triton.exactness": "the triton kernels' self-check compares them with the reference on "
                                       "purpose (imported inside check_case, not on the backend's run path)",
}


class Import(NamedTuple):
    source: str  # the importing module
    target: str  # the imported module of the package
    line: int
    module_level: bool  # runs when the source module is imported (not inside a function, not TYPE_CHECKING)


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root`` (the package ``package``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, module_level: bool):
    """``(import node, module_level)`` for every import under ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, module_level
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), False)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), module_level)
        else:
            yield from _walk(child, module_level)


def imports(root: Path, package: str) -> list[Import]:
    """Every import of a module of ``package`` by a module of ``package``, relative ones resolved.

    ``from X import Y`` imports the module ``X.Y`` when there is one, else ``X``."""
    known = modules(root, package)
    found = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node, module_level in _walk(ast.parse(path.read_text(), str(path)), True):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    anchor = parts if is_package else parts[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            for target in targets:
                if target in known:
                    found.append(Import(name, target, node.lineno, module_level))
    return found


def cycles(edges: list[Import]) -> list[list[str]]:
    """The import cycles among module-level imports: one per strongly connected component of more
    than one module (or a module importing itself), as a closed path ``[a, b, ..., a]``."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.module_level:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
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
            if len(component) > 1 or node in graph[node]:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_closed_path(graph, component) for component in components]


def _closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One cycle through the first module of ``component`` (breadth-first, so a shortest one)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return paths[node] + [start]
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    raise AssertionError("unreachable: a strongly connected component has a cycle")


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def forbidden(edges: list[Import], allowed: dict[str, str]) -> list[str]:
    """The imports that break rules (b) and (c), as readable lines."""
    problems = []
    for edge in edges:
        where = f"{edge.source} (line {edge.line}) imports {edge.target}"
        if _under(edge.source, TRITON) and _under(edge.target, CPU):
            problems.append(f"{where}: the triton backend must not import the cpu backend")
        if ((_under(edge.source, TRITON) or _under(edge.source, CPU)) and _under(edge.target, REFERENCE)
                and edge.source not in allowed):
            problems.append(f"{where}: a fast backend must not import the reference backend")
    return problems


def test_module_level_imports_have_no_cycle():
    found = cycles(imports(PACKAGE, "spikingrnn"))
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_fast_backends_import_neither_each_other_nor_the_reference():
    edges = imports(PACKAGE, "spikingrnn")
    assert {e.source for e in edges} >= {f"{TRITON}.lstm", f"{CPU}.lstm"}, "the package layout changed"
    problems = forbidden(edges, REFERENCE_ALLOWED)
    assert not problems, "\n".join(problems)
    for module in REFERENCE_ALLOWED:  # the exception is only needed where the reference is imported
        assert any(e.source == module and e.target == REFERENCE for e in edges), f"{module} is listed for nothing"


def test_the_checks_find_what_they_look_for(tmp_path):
    files = {
        "__init__.py": "from . import a\n",
        "a.py": "from typing import TYPE_CHECKING\nfrom .b import thing\nif TYPE_CHECKING:\n    from . import c\n",
        "b.py": "import spikingrnn.a as a\nthing = 1\n",
        "c.py": "from .a import something\n",  # a -> c only under TYPE_CHECKING: no cycle
        "d.py": "def late():\n    from . import e\n",
        "e.py": "from . import d\n",  # d -> e inside a function: no cycle
        "ops/__init__.py": "",
        "ops/reference.py": "",
        "ops/cpu/__init__.py": "from ..reference import run\n",
        "ops/triton/__init__.py": "def run():\n    from ..cpu import storage\n",
        "ops/triton/exactness.py": "def check():\n    from .. import reference\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    edges = imports(tmp_path, "spikingrnn")
    assert cycles(edges) == [["spikingrnn.a", "spikingrnn.b", "spikingrnn.a"]]
    problems = forbidden(edges, {"spikingrnn.ops.triton.exactness": "self-check"})
    assert len(problems) == 2, problems
    assert "spikingrnn.ops.cpu (line 1) imports spikingrnn.ops.reference" in problems[0]
    assert "spikingrnn.ops.triton (line 2) imports spikingrnn.ops.cpu" in problems[1]
    assert len(forbidden(edges, {})) == 3
