"""Architecture: no import cycles among nmfsep's modules, no private names used across modules.

Every intra-package import is read with :mod:`ast` (nothing is imported): top-level ones, those
inside functions (how cycles are usually hidden) and those under ``if TYPE_CHECKING:``. Run as a
script for the whole report::

    python tests/test_architecture.py          # cycles and private names
    python tests/test_architecture.py --all    # and every intra-package import

An edge goes to the module an import names: ``from .nmf import factorize`` is an edge to
``nmfsep.nmf`` (or to ``nmfsep.nmf.factorize`` when that is a module), not to the parent packages
that Python initialises on the way (every module would otherwise be in a cycle with
``nmfsep/__init__.py``). Imports under ``TYPE_CHECKING`` are listed but do not count for cycles:
they never run. A private name is ``_x`` (not a dunder), imported from another module or read
through an imported module (``audio_io._x``).
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nmfsep"

#: Imports known to close a cycle, as (importer, imported module): the cycle check skips them.
#: Remove an entry once it is fixed (a test fails while a listed import no longer closes a cycle).
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()

#: Private names known to be used from another module, as (user, module, name).
#: Remove an entry once it is fixed (a test fails while a listed use no longer exists).
KNOWN_PRIVATE_USES: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Use:
    """``importer`` imports ``module`` (``name`` None) or a name of it, or reads ``module.name``."""

    importer: str
    module: str
    name: str | None
    line: int
    scope: str  #: "top", "function" or "typing" (under ``if TYPE_CHECKING:``)
    path: str  #: the importer's file, relative to the package's parent
    kind: str = "import"  #: "import", or "attribute" for ``module.name`` through an imported module

    @property
    def key(self) -> tuple[str, str, str]:
        return self.importer, self.module, self.name or ""


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (``__init__`` is the package)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _scoped_nodes(tree: ast.AST) -> Iterable[tuple[ast.AST, str]]:
    """Every node with the scope it runs in: "top", "function" or "typing"."""
    stack: list[tuple[ast.AST, str]] = [(tree, "top")]
    while stack:
        node, scope = stack.pop()
        yield node, scope
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and scope == "top":
                inner = "function"
            elif isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                inner = "typing"
            stack.append((child, inner))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def uses_of(package: Path) -> list[Use]:
    """Every import, in any module of ``package``, of a module of ``package``; and every
    ``module.name`` read of a private name through such an imported module."""
    modules = module_names(package)
    root = package.name
    found = []
    for importer, path in modules.items():
        # the package a relative import starts from: the module's own for an __init__
        base = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(package.parent).as_posix()
        bound: dict[str, str] = {}  # local name -> the package module it is bound to
        attributes = []
        for node, scope in _scoped_nodes(tree):
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.append((alias.name, None))
                    first = alias.name.split(".")[0]
                    bound[alias.asname or first] = alias.name if alias.asname else first
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    start = base[: len(base) - node.level + 1]
                    source = ".".join(start + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        targets.append((submodule, None))
                        bound[alias.asname or alias.name] = submodule
                    else:
                        targets.append((source, alias.name))
            elif isinstance(node, ast.Attribute) and _is_private(node.attr):
                attributes.append((node, scope))
            for module, name in targets:
                if module == root or module.startswith(root + "."):
                    found.append(Use(importer, module, name, node.lineno, scope, where))
        for node, scope in attributes:
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                module = ".".join([bound[value.id], *reversed(chain)])
                if module in modules and module != importer:
                    found.append(Use(importer, module, node.attr, node.lineno, scope, where, "attribute"))
    return sorted(found, key=lambda use: (use.path, use.line, use.module, use.name or ""))


def private_uses(uses: Iterable[Use]) -> list[Use]:
    """Uses of a private name, or imports of a private module, from another module."""
    return [
        use
        for use in uses
        if use.module != use.importer
        and ((use.name is not None and _is_private(use.name)) or _is_private(use.module.rsplit(".", 1)[-1]))
    ]


def graph(uses: Iterable[Use], skip: Iterable[tuple[str, str]] = ()) -> dict[str, set[str]]:
    """importer -> imported modules, from every import that runs (not TYPE_CHECKING), less ``skip``."""
    skipped = set(skip)
    edges: dict[str, set[str]] = {}
    for use in uses:
        if use.kind == "import" and use.scope != "typing" and use.module != use.importer:
            if (use.importer, use.module) not in skipped:
                edges.setdefault(use.importer, set()).add(use.module)
                edges.setdefault(use.module, set())
    return edges


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of more than one module that all reach each other (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(edges):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(edges[start])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while not group or group[-1] != node:
                        group.append(stack.pop())
                        on_stack.discard(group[-1])
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(groups)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle ``[a, b, ..., a]`` through the first module of each strongly connected group."""
    found = []
    for group in _strongly_connected(edges):
        members, first = set(group), group[0]
        previous: dict[str, str] = {}
        frontier = [first]
        while first not in previous:  # breadth first inside the group, back to the first module
            following = []
            for node in frontier:
                for child in sorted(edges[node] & members):
                    if child not in previous:
                        previous[child] = node
                        following.append(child)
            frontier = following
        path = [first]
        while len(path) == 1 or path[-1] != first:
            path.append(previous[path[-1]])
        found.append(path[::-1])
    return found


def _edges_on_cycles(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Every edge whose two ends are in the same strongly connected group."""
    on_cycles = set()
    for group in _strongly_connected(edges):
        on_cycles |= {(a, b) for a in group for b in edges[a] if b in group}
    return on_cycles


def describe(uses: Iterable[Use]) -> list[str]:
    """One line per statement: ``file:line (scope) importer -> module: names``."""
    lines = []
    for (path, line, scope, importer, module, kind), group in itertools.groupby(
        uses, key=lambda use: (use.path, use.line, use.scope, use.importer, use.module, use.kind)
    ):
        names = ", ".join(use.name for use in group if use.name)
        how = "reads" if kind == "attribute" else "->"
        lines.append(f"{path}:{line} ({scope}) {importer} {how} {module}" + (f": {names}" if names else ""))
    return lines


def _describe_cycle(cycle: list[str], uses: list[Use]) -> list[str]:
    steps = set(zip(cycle, cycle[1:], strict=False))
    closing = [use for use in uses if use.kind == "import" and (use.importer, use.module) in steps]
    return [" -> ".join(cycle), *(f"    {line}" for line in describe(closing))]


def report(package: Path = PACKAGE, show_all: bool = False) -> str:
    uses = uses_of(package)
    imports = [use for use in uses if use.kind == "import"]
    lines = []
    if show_all:
        lines += [
            f"Intra-package imports ({len(imports)}):",
            *(f"  {line}" for line in describe(imports)),
            "",
        ]
    found = cycles(graph(uses))
    lines.append(f"Import cycles ({len(found)}):")
    lines += [f"  {line}" for cycle in found for line in _describe_cycle(cycle, uses)] or ["  none"]
    private = private_uses(uses)
    lines.append(f"Private names used from another module ({len(private)}):")
    lines += [f"  {line}" for line in describe(private)] or ["  none"]
    known = len(KNOWN_CYCLE_EDGES) + len(KNOWN_PRIVATE_USES)
    lines.append(f"Known (tolerated by the tests): {known}")
    return "\n".join(lines)


# --- the tests --------------------------------------------------------------------------------------


def test_the_checks_see_the_package():
    """A parser that found nothing would find no cycle: check it sees imports of every kind."""
    edges = {(use.importer, use.module, use.scope) for use in uses_of(PACKAGE)}
    assert ("nmfsep.blockwise", "nmfsep.spectrogram", "top") in edges
    assert ("nmfsep.nmf.factorize", "nmfsep.errors", "top") in edges  # from ..errors
    assert ("nmfsep.nmf.updates", "nmfsep.nmf.kernels", "function") in edges  # from . import kernels
    assert len(module_names(PACKAGE)) >= 15


def test_no_new_import_cycle():
    uses = uses_of(PACKAGE)
    found = cycles(graph(uses, skip=KNOWN_CYCLE_EDGES))
    message = [line for cycle in found for line in _describe_cycle(cycle, uses)]
    assert not found, "import cycles (an import inside a function counts too):\n" + "\n".join(message)


def test_no_new_private_use():
    new = [use for use in private_uses(uses_of(PACKAGE)) if use.key not in KNOWN_PRIVATE_USES]
    message = "\n".join(describe(new))
    assert not new, f"private names used from another module (make them public or move them):\n{message}"


def test_known_violations_are_still_there():
    """The known lists only shrink: a fixed entry must be removed from them."""
    uses = uses_of(PACKAGE)
    fixed = sorted(KNOWN_CYCLE_EDGES - _edges_on_cycles(graph(uses)))
    assert not fixed, f"no longer on a cycle, remove from KNOWN_CYCLE_EDGES: {fixed}"
    fixed = sorted(KNOWN_PRIVATE_USES - {use.key for use in private_uses(uses)})
    assert not fixed, f"no longer used, remove from KNOWN_PRIVATE_USES: {fixed}"


def test_the_checks_find_cycles_and_private_names(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import run\n",
        "a.py": "from . import b\n\ndef run():\n    from .c import helper\n",
        "b.py": "from .sub.d import _private\nfrom . import c as see\nsee._hidden\n",
        "c.py": "import pkg.a\nimport pkg.sub.d\npkg.sub.d._private\n",
        "sub/__init__.py": "",
        "sub/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import run\n_private = 1\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    uses = uses_of(package)
    assert {(use.importer, use.module, use.scope) for use in uses if use.kind == "import"} == {
        ("pkg", "pkg.a", "top"),
        ("pkg.a", "pkg.b", "top"),
        ("pkg.a", "pkg.c", "function"),
        ("pkg.b", "pkg.sub.d", "top"),
        ("pkg.b", "pkg.c", "top"),
        ("pkg.c", "pkg.a", "top"),
        ("pkg.c", "pkg.sub.d", "top"),
        ("pkg.sub.d", "pkg.a", "typing"),
    }
    assert cycles(graph(uses)) == [["pkg.a", "pkg.c", "pkg.a"]]  # the shortest of the two
    assert cycles(graph(uses, skip={("pkg.c", "pkg.a")})) == []
    assert _edges_on_cycles(graph(uses)) == {
        ("pkg.a", "pkg.b"),
        ("pkg.a", "pkg.c"),
        ("pkg.b", "pkg.c"),
        ("pkg.c", "pkg.a"),
    }
    assert [use.key for use in private_uses(uses)] == [
        ("pkg.b", "pkg.sub.d", "_private"),
        ("pkg.b", "pkg.c", "_hidden"),
        ("pkg.c", "pkg.sub.d", "_private"),
    ]


if __name__ == "__main__":
    print(report(show_all="--all" in sys.argv[1:]))


def test_no_public_name_is_both_a_module_and_something_else():
    """``nmfsep.separate`` was a module and a function: which one a user got depended on imports."""
    import pkgutil

    import nmfsep

    modules = {info.name for info in pkgutil.iter_modules(nmfsep.__path__)}
    clashes = sorted(name for name in modules & set(nmfsep.__all__))
    assert clashes == []
