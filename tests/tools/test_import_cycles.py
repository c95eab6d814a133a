"""No import loop among a package's modules.

Two modules of one package that import each other (directly or around a longer
loop) cannot be read, tested or moved apart; the shared piece wants a module of
its own. A package's ``__init__`` re-exporting its modules' names is not a loop.
Imports inside functions and under ``if TYPE_CHECKING:`` count: they hide a
loop, they do not break it. A subpackage is a package of its own, its modules
checked among themselves: ``netcl.core.tensor.ops`` builds Tensors and Tensor's
methods call it, which is the one loop between packages the design keeps (its
methods are the API; a read's checks and pickling, which use the ops, plug into
``tensor.py`` instead of being imported by it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[2] / "packages"


def _package_dirs() -> list[Path]:
    return sorted({path.parent for path in PACKAGES.glob("*/src/netcl/**/*.py")})


def _module_name(path: Path) -> str:
    parts = path.relative_to(path.parents[len(path.parts) - path.parts.index("src") - 2]).parts
    dotted = ".".join(parts).removesuffix(".py")
    return dotted.removesuffix(".__init__")


def _imports(tree: ast.Module, own: str) -> Iterator[str]:
    """The modules ``own`` imports, absolute and dotted (``from a import b`` yields ``a.b``
    as well as ``a``, since ``b`` may be a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own.split(".")
                base = base[: len(base) - node.level]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _graph(package: Path) -> dict[str, set[str]]:
    """Edges between the modules of ``package`` (not its ``__init__``)."""
    prefix = _module_name(package / "__init__.py")
    nodes = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    edges: dict[str, set[str]] = {node: set() for node in nodes}
    for node in nodes:
        source = package / f"{node}.py"
        tree = ast.parse(source.read_text(), str(source))
        for target in _imports(tree, f"{prefix}.{node}"):
            rest = target.removeprefix(prefix + ".")
            if rest != target and rest in nodes and rest != node:
                edges[node].add(rest)
    return edges


def _loop(edges: dict[str, set[str]]) -> list[str] | None:
    """One import loop in ``edges``, as the modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


@pytest.mark.parametrize(
    "package", _package_dirs(), ids=lambda p: _module_name(p / "__init__.py"))
def test_no_import_loop_among_a_packages_modules(package: Path) -> None:
    loop = _loop(_graph(package))
    assert loop is None, (
        f"{_module_name(package / '__init__.py')}: these modules import each other: "
        f"{' -> '.join(loop or [])}; move what they share into a module of its own"
    )


def test_the_check_finds_a_loop(tmp_path: Path) -> None:
    package = tmp_path / "packages" / "x" / "src" / "netcl" / "looped"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from netcl.looped.a import A\n")
    (package / "a.py").write_text("from netcl.looped import b\nA = 1\n")
    (package / "b.py").write_text("def f():\n    from netcl.looped.a import A\n    return A\n")
    assert _loop(_graph(package)) == ["a", "b", "a"]
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from netcl.looped import c\n")
    (package / "c.py").write_text("from .a import A\n")
    assert _loop(_graph(package)) == ["a", "b", "c", "a"]
    (package / "c.py").write_text("C = 3\n")
    assert _loop(_graph(package)) is None
