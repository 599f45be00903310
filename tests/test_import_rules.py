"""The package's import rules, checked on the source (AST) of every library module.

1. No module uses another package folder's private names (``from retdm_keras.x import _y``,
   or ``x._y`` on an imported retdm_keras module); inside one folder they are shared freely.
2. One direction, no loops: the zoo only saves and loads (it imports the model layer, the
   metrics names and the file helpers, never the recipes, training, data or the CLI); the
   recipes use the zoo only through its entry writer; ``retdm_keras.data`` imports nothing
   but itself and the file helpers; only the CLI (and the package's own ``__init__``)
   imports the recipes and the zoo (``RETDM.from_preset`` imports the zoo at call time),
   and nothing in ``retdm_keras`` but the CLI imports the CLI.
3. The library never reaches outside itself for files: no ``__file__`` paths or
   ``.parents[...]`` (package data is read through ``importlib.resources``), and no default
   data folder (``shared/data`` is the Makefile's default for ``RETDM_DATA_DIR``).

Each rule is also run on small synthetic sources, so that a rule that cannot fail is noticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("retdm_keras", "retdm_keras_cli")

# importer prefix -> the retdm_keras modules (prefixes) it may import; "retdm_keras" alone is
# the package itself (``import retdm_keras`` registers the Keras classes before a load)
ALLOWED = {
    "retdm_keras.zoo": (
        "retdm_keras.zoo",
        "retdm_keras.files",
        "retdm_keras.model",
        "retdm_keras.metrics",
        "retdm_keras.metric_names",
        "retdm_keras.version",
    ),
    "retdm_keras.data": ("retdm_keras.data", "retdm_keras.files"),
}
# imported prefix -> the importers (prefixes) that may import it
RESTRICTED = {
    "retdm_keras.cli": ("retdm_keras.cli", "retdm_keras_cli"),
    "retdm_keras.recipes": ("retdm_keras.recipes", "retdm_keras.cli", "retdm_keras.__init__"),
    "retdm_keras.zoo": (
        "retdm_keras.zoo",
        "retdm_keras.cli",
        "retdm_keras.__init__",
        "retdm_keras.recipes",
        # RETDM.from_preset (keras-hub's habit), imported at call time; the rest of the
        # retdm_keras.model package does not import the zoo
        "retdm_keras.model.retdm",
    ),
}
# the recipes use the zoo's entry writer, nothing else of it
RECIPES_USE_OF_ZOO = ("retdm_keras.zoo.entry",)
PACKAGE_ROOT_ALLOWED_FOR_ZOO = "retdm_keras"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_package(module: str) -> bool:
    return (ROOT.joinpath(*module.split(".")) / "__init__.py").is_file()


def _folder(module: str) -> str:
    """The package folder that holds ``module``'s names (a package holds its own)."""
    return module if _is_package(module) else module.rpartition(".")[0]


def _is_library(module: str) -> bool:
    return any(_under(module, top) for top in LIBRARY)


def _imported(node: ast.AST, package: str) -> list[tuple[str, str | None]]:
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
        pairs.append((sub, None) if _module_file(sub) else (module, alias.name))
    return pairs


def _bindings(tree: ast.AST, package: str) -> dict[str, str]:
    """Local names bound to library modules by the imports of ``tree``."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            for (module, name), alias in zip(_imported(node, package), node.names, strict=True):
                if name is None:
                    bound[alias.asname or alias.name] = module
    return {k: v for k, v in bound.items() if _is_library(v)}


def _module_of(expr: ast.AST, bound: dict[str, str]) -> str | None:
    """The library module an expression like ``zoo`` or ``retdm_keras.zoo`` names."""
    if isinstance(expr, ast.Name):
        return bound.get(expr.id)
    if isinstance(expr, ast.Attribute):
        parent = _module_of(expr.value, bound)
        if parent is not None and _module_file(f"{parent}.{expr.attr}"):
            return f"{parent}.{expr.attr}"
    return None


def violations(module: str, source: str) -> list[str]:
    """The rule violations of library ``module`` whose source is ``source``."""
    tree = ast.parse(source)
    package = module if _is_package(module) else module.rpartition(".")[0]
    importer = module + ".__init__" if _is_package(module) else module
    here = _folder(module)
    found = []
    for node in ast.walk(tree):
        for target, name in _imported(node, package):
            line = getattr(node, "lineno", 0)
            if name is not None and _is_private(name) and _is_library(target):
                if _folder(target) != here:
                    found.append(f"{line}: private name {target}.{name} of another folder")
            if not _under(target, "retdm_keras"):
                continue
            for prefix, allowed in ALLOWED.items():
                if _under(module, prefix) and not any(_under(target, a) for a in allowed):
                    if not (prefix == "retdm_keras.zoo" and target == PACKAGE_ROOT_ALLOWED_FOR_ZOO):
                        found.append(f"{line}: {prefix} may not import {target}")
            for prefix, importers in RESTRICTED.items():
                if _under(target, prefix) and not any(_under(importer, i) for i in importers):
                    found.append(f"{line}: only {importers} import {prefix}, not {module}")
            if (
                _under(module, "retdm_keras.recipes")
                and _under(target, "retdm_keras.zoo")
                and target not in RECIPES_USE_OF_ZOO
            ):
                found.append(f"{line}: the recipes use only {RECIPES_USE_OF_ZOO}, not {target}")
    bound = _bindings(tree, package)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _module_of(node.value, bound)
            if owner is not None and _folder(owner) != here:
                found.append(f"{node.lineno}: private name {owner}.{node.attr} of another folder")
        if isinstance(node, ast.Name) and node.id == "__file__":
            found.append(f"{node.lineno}: __file__ (read package data via importlib.resources)")
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            if node.value.attr == "parents":
                found.append(f"{node.lineno}: .parents[...] reaches outside the package")
    if "shared/data" in source or "shared\\data" in source:
        found.append("a default data folder (shared/data): that is the Makefile's RETDM_DATA_DIR")
    return found


def _library_modules() -> list[tuple[str, Path]]:
    modules = []
    for top in LIBRARY:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append((".".join(parts), path))
    return modules


@pytest.mark.parametrize(("module", "path"), _library_modules(), ids=lambda v: str(v))
def test_the_library_keeps_the_import_rules(module, path):
    assert violations(module, path.read_text(encoding="utf-8")) == []


def test_every_package_folder_is_covered():
    modules = {module for module, _ in _library_modules()}
    assert {"retdm_keras.zoo.registry", "retdm_keras.recipes.run", "retdm_keras.cli.train"} <= (
        modules
    )
    assert "retdm_keras.data.labels" in modules and "retdm_keras_cli" in modules


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # 1. private names of another folder
        ("retdm_keras.cli.train", "from retdm_keras.zoo.entry import _x", "private name"),
        ("retdm_keras.cli.train", "from retdm_keras import zoo\nzoo._x(1)", "private name"),
        ("retdm_keras.cli.train", "import retdm_keras.zoo as z\nz.entry._x", "private name"),
        ("retdm_keras.cli.train", "import retdm_keras\nretdm_keras.zoo._x", "private name"),
        ("retdm_keras.recipes.run", "from ..zoo.entry import _x", "private name"),
        # 2. directions
        ("retdm_keras.zoo.loading", "from retdm_keras.recipes import find_recipe", "may not"),
        ("retdm_keras.zoo.listing", "def f():\n    from retdm_keras import recipes", "may not"),
        ("retdm_keras.zoo.entry", "from retdm_keras.training import fit_stages", "may not"),
        ("retdm_keras.zoo.entry", "import retdm_keras.cli", "may not"),
        ("retdm_keras.data.labels", "from retdm_keras.model import RETDM", "may not"),
        ("retdm_keras.data.coco", "from retdm_keras import zoo", "may not"),
        ("retdm_keras.training", "from retdm_keras import zoo", "only"),
        ("retdm_keras.training", "from retdm_keras.recipes import Recipe", "only"),
        ("retdm_keras.export", "from retdm_keras.cli.common import CLIError", "only"),
        ("retdm_keras.model.objective", "from retdm_keras import zoo", "only"),
        ("retdm_keras.recipes.run", "from retdm_keras.zoo.loading import load", "use only"),
        ("retdm_keras.recipes.run", "from retdm_keras import zoo", "use only"),
        # 3. reaching outside the package
        ("retdm_keras.zoo.registry", "from pathlib import Path\nPath(__file__)", "__file__"),
        ("retdm_keras.recipes.builtin", "ROOT = here.resolve().parents[1]", "parents"),
        ("retdm_keras.recipes.paths", "DEFAULT = '../shared/data'", "shared/data"),
    ],
)
def test_each_rule_can_fail(module, source, expected):
    found = violations(module, source)
    assert any(expected in v for v in found), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("retdm_keras.cli.train", "from retdm_keras.cli.common import _save_model"),
        ("retdm_keras.cli.train", "from retdm_keras.cli import _common\n_common._first_line"),
        ("retdm_keras.zoo.listing", "from retdm_keras.zoo.registry import _next_version"),
        ("retdm_keras.zoo.entry", "import retdm_keras\nfrom retdm_keras.model import RETDM"),
        ("retdm_keras.model.retdm", "def f():\n    from retdm_keras.zoo import load"),
        ("retdm_keras.recipes.run", "from retdm_keras.zoo.entry import write_entry"),
        ("retdm_keras.cli.zoo", "from retdm_keras import recipes, zoo"),
        ("retdm_keras.data.folder_csv", "from retdm_keras.files import atomic_write"),
        ("retdm_keras.zoo.registry", "x = registry.resolve().parent.parent"),
    ],
)
def test_what_the_rules_allow(module, source):
    assert violations(module, source) == []
