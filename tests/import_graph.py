"""The library's modules and the imports between them, read from their source (AST) without
importing them: what ``test_import_rules.py`` checks its rules on."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("retdm_keras", "retdm_keras_cli")


def is_private(name: str) -> bool:
    """A leading underscore, and not a dunder (``__version__``, ``__init__``)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def under(module: str, prefix: str) -> bool:
    """``module`` is ``prefix`` or inside it."""
    return module == prefix or module.startswith(prefix + ".")


def module_file(module: str) -> Path | None:
    """The source file of library ``module`` (a package's ``__init__.py``), or None."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_package(module: str) -> bool:
    """``module`` is a package (a folder with an ``__init__.py``)."""
    return (ROOT.joinpath(*module.split(".")) / "__init__.py").is_file()


def is_library(module: str) -> bool:
    """``module`` is ``retdm_keras``, ``retdm_keras_cli`` or inside them."""
    return any(under(module, top) for top in LIBRARY)


def import_targets(node: ast.AST, package: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` pairs of an import statement; ``name`` None for ``import x``; a
    ``from pkg import submodule`` gives ``(pkg.submodule, None)``."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    pairs: list[tuple[str, str | None]] = []
    for alias in node.names:
        sub = f"{module}.{alias.name}"
        pairs.append((sub, None) if module_file(sub) else (module, alias.name))
    return pairs


def library_modules() -> list[tuple[str, Path]]:
    """``(module, source file)`` of every library module; a package is its ``__init__``."""
    modules = []
    for top in LIBRARY:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append((".".join(parts), path))
    return modules


def import_edges(module: str, source: str) -> set[str]:
    """The library modules that library ``module`` (source ``source``) imports, itself left out."""
    package = module if is_package(module) else module.rpartition(".")[0]
    return {
        target
        for node in ast.walk(ast.parse(source))
        for target, _ in import_targets(node, package)
        if target != module and is_library(target) and module_file(target) is not None
    }


def library_graph() -> dict[str, set[str]]:
    """``{module: the library modules it imports}`` over every library module."""
    return {
        module: import_edges(module, path.read_text(encoding="utf-8"))
        for module, path in library_modules()
    }


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The loops of ``graph``: its strongly connected components of two or more nodes (each
    sorted; Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in sorted(graph):
        if root in index:
            continue
        visit(root)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    visit(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)
