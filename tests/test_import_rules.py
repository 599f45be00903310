"""The package's import rules, checked on the source (AST) of every library module.

1. No module uses another module's private names: not ``from retdm_keras.x import _y``, not
   ``x._y`` on an imported retdm_keras module, not a private module (``retdm_keras.x._y``),
   whether the other module is in the same package folder or not. A module's own private
   names stay its own; what several modules share is public, in the module where it belongs.
2. One direction: the zoo only saves and loads (it imports the model layer, the metrics
   names, the file helpers and the version, never the recipes, training, data, the CLI or
   the package root); the recipes use the zoo only through its entry writer;
   ``retdm_keras.data`` imports nothing but itself and the file helpers; only the CLI (and
   the package's own ``__init__``) imports the recipes and the zoo (``RETDM.from_preset``
   imports the zoo at call time), and nothing in ``retdm_keras`` but the CLI imports the CLI.
3. No loops: the graph of the imports between the library's modules has no cycle (a
   strongly connected component of two or more modules) but the one named in
   ``KNOWN_CYCLE_EDGES``. Every import statement counts, inside functions and under
   ``TYPE_CHECKING`` too; a package's ``__init__`` is the module ``retdm_keras.x``;
   ``import a.b.c`` and ``from a.b import c`` (``c`` a submodule) are an edge to ``a.b.c``,
   ``from a.b import name`` one to ``a.b``. The packages Python runs before a submodule
   (``a``, ``a.b``) are not edges: every package that imports its own modules would be a loop.
4. The library never reaches outside itself for files: no ``__file__`` paths or
   ``.parents[...]`` (package data is read through ``importlib.resources``), and no default
   data folder (``shared/data`` is the Makefile's default for ``RETDM_DATA_DIR``).

Each rule is also run on small synthetic sources (the loop search on made-up graphs), so that
a rule that cannot fail is noticed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

import pytest
from import_graph import (
    cycles,
    import_edges,
    import_targets,
    is_library,
    is_package,
    is_private,
    library_graph,
    library_modules,
    module_file,
    under,
)

# importer prefix -> the retdm_keras modules (prefixes) it may import
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
        # retdm_keras.model package does not import the zoo (issue #31 step 3 removes it)
        "retdm_keras.model.retdm",
    ),
}
# the recipes use the zoo's entry writer, nothing else of it
RECIPES_USE_OF_ZOO = ("retdm_keras.zoo.entry",)
# (importer, imported) edges of the import graph that are known to close a loop; no other
# edge may. issue #31 step 3: RETDM.from_preset imports the zoo at call time while the zoo
# (entry, loading, head_weights) imports RETDM; the model will own its preset format.
KNOWN_CYCLE_EDGES = frozenset({("retdm_keras.model.retdm", "retdm_keras.zoo")})


def _private_module(target: str, module: str) -> str | None:
    """The first private module on the path ``target`` that ``module`` is not part of."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        owner = ".".join(parts[: i + 1])
        if is_private(part) and not under(module, owner):
            return owner
    return None


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
            for (module, name), alias in zip(
                import_targets(node, package), node.names, strict=True
            ):
                if name is None:
                    bound[alias.asname or alias.name] = module
    return {k: v for k, v in bound.items() if is_library(v)}


def _module_of(expr: ast.AST, bound: dict[str, str]) -> str | None:
    """The library module an expression like ``zoo`` or ``retdm_keras.zoo`` names."""
    if isinstance(expr, ast.Name):
        return bound.get(expr.id)
    if isinstance(expr, ast.Attribute):
        parent = _module_of(expr.value, bound)
        if parent is not None and module_file(f"{parent}.{expr.attr}"):
            return f"{parent}.{expr.attr}"
    return None


def violations(module: str, source: str) -> list[str]:
    """The rule violations of library ``module`` whose source is ``source``."""
    tree = ast.parse(source)
    package = module if is_package(module) else module.rpartition(".")[0]
    importer = module + ".__init__" if is_package(module) else module
    found = []
    for node in ast.walk(tree):
        for target, name in import_targets(node, package):
            line = getattr(node, "lineno", 0)
            if not is_library(target):
                continue
            private = _private_module(target, module)
            if private is not None:
                found.append(f"{line}: private module {private} of another module")
            elif name is not None and is_private(name) and target != module:
                found.append(f"{line}: private name {target}.{name} of another module")
            if not under(target, "retdm_keras"):
                continue
            for prefix, allowed in ALLOWED.items():
                if under(module, prefix) and not any(under(target, a) for a in allowed):
                    found.append(f"{line}: {prefix} may not import {target}")
            for prefix, importers in RESTRICTED.items():
                if under(target, prefix) and not any(under(importer, i) for i in importers):
                    found.append(f"{line}: only {importers} import {prefix}, not {module}")
            if (
                under(module, "retdm_keras.recipes")
                and under(target, "retdm_keras.zoo")
                and target not in RECIPES_USE_OF_ZOO
            ):
                found.append(f"{line}: the recipes use only {RECIPES_USE_OF_ZOO}, not {target}")
    bound = _bindings(tree, package)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = _module_of(node.value, bound)
            if owner is not None and owner != module:
                found.append(f"{node.lineno}: private name {owner}.{node.attr} of another module")
        if isinstance(node, ast.Name) and node.id == "__file__":
            found.append(f"{node.lineno}: __file__ (read package data via importlib.resources)")
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            if node.value.attr == "parents":
                found.append(f"{node.lineno}: .parents[...] reaches outside the package")
    if "shared/data" in source or "shared\\data" in source:
        found.append("a default data folder (shared/data): that is the Makefile's RETDM_DATA_DIR")
    return found


def unexpected_cycles(
    graph: Mapping[str, Iterable[str]], known: Iterable[tuple[str, str]] = KNOWN_CYCLE_EDGES
) -> list[list[str]]:
    """The loops of ``graph`` once the ``known`` edges are left out."""
    known = set(known)
    return cycles({m: {t for t in ts if (m, t) not in known} for m, ts in graph.items()})


def _describe(graph: Mapping[str, Iterable[str]], component: list[str]) -> str:
    inside = set(component)
    edges = [f"{m} -> {t}" for m in component for t in sorted(graph.get(m, ())) if t in inside]
    return f"a loop of {len(component)} modules: " + "; ".join(edges)


@pytest.mark.parametrize(("module", "path"), library_modules(), ids=lambda v: str(v))
def test_the_library_keeps_the_import_rules(module, path):
    assert violations(module, path.read_text(encoding="utf-8")) == []


def test_every_package_folder_is_covered():
    modules = {module for module, _ in library_modules()}
    assert {"retdm_keras.zoo.registry", "retdm_keras.recipes.run", "retdm_keras.cli.train"} <= (
        modules
    )
    assert "retdm_keras.data.labels" in modules and "retdm_keras_cli" in modules
    assert {"retdm_keras.training", "retdm_keras.training.stage_loop"} <= modules


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # 1. private names of another module, in another folder or the same one
        ("retdm_keras.cli.train", "from retdm_keras.zoo.entry import _x", "private name"),
        ("retdm_keras.cli.train", "from retdm_keras import zoo\nzoo._x(1)", "private name"),
        ("retdm_keras.cli.train", "import retdm_keras.zoo as z\nz.entry._x", "private name"),
        ("retdm_keras.cli.train", "import retdm_keras\nretdm_keras.zoo._x", "private name"),
        ("retdm_keras.recipes.run", "from ..zoo.entry import _x", "private name"),
        ("retdm_keras.cli.train", "from retdm_keras.cli.common import _save", "private name"),
        ("retdm_keras.cli.train", "def f():\n    from .common import _save", "private name"),
        ("retdm_keras.cli.train", "from retdm_keras.cli import common\ncommon._x", "private name"),
        ("retdm_keras.cli.calibrate", "from .evaluate import _image_eval_data", "private name"),
        ("retdm_keras.data.folder_csv", "from retdm_keras.data.augment import _as_hw", "private"),
        ("retdm_keras.zoo.listing", "from retdm_keras.zoo.registry import _next", "private"),
        ("retdm_keras.cli", "from retdm_keras import _LAZY", "private name"),
        ("retdm_keras.cli", "import retdm_keras\nretdm_keras._ORIGINS", "private name"),
        ("retdm_keras.cli.train", "from retdm_keras.cli._common import CLIError", "private module"),
        ("retdm_keras.cli.train", "from ._options import add_fit_arguments", "private module"),
        ("retdm_keras.datasets", "from retdm_keras.datasets._builder import B", "private module"),
        ("retdm_keras.cli.tune", "import retdm_keras.cli._training as t", "private module"),
        ("retdm_keras.cli.train", "from retdm_keras.cli import _common", "private"),
        # 2. directions
        ("retdm_keras.zoo.loading", "from retdm_keras.recipes import find_recipe", "may not"),
        ("retdm_keras.zoo.listing", "def f():\n    from retdm_keras import recipes", "may not"),
        ("retdm_keras.zoo.entry", "from retdm_keras.training import fit_stages", "may not"),
        ("retdm_keras.zoo.entry", "import retdm_keras.cli", "may not"),
        ("retdm_keras.zoo.entry", "def f():\n    import retdm_keras", "may not"),
        ("retdm_keras.data.labels", "from retdm_keras.model import RETDM", "may not"),
        ("retdm_keras.data.coco", "from retdm_keras import zoo", "may not"),
        ("retdm_keras.training", "from retdm_keras import zoo", "only"),
        ("retdm_keras.training.fit", "from retdm_keras import zoo", "only"),
        ("retdm_keras.training.stage_loop", "from retdm_keras.recipes import Recipe", "only"),
        ("retdm_keras.export", "from retdm_keras.cli.common import CLIError", "only"),
        ("retdm_keras.model.objective", "from retdm_keras import zoo", "only"),
        ("retdm_keras.recipes.run", "from retdm_keras.zoo.loading import load", "use only"),
        ("retdm_keras.recipes.run", "from retdm_keras import zoo", "use only"),
        # 4. reaching outside the package
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
        ("retdm_keras.cli.train", "from retdm_keras.cli.common import save_model"),
        ("retdm_keras.cli.train", "from retdm_keras.cli import common\ncommon.first_line"),
        ("retdm_keras.zoo.registry", "def _next():\n    pass\n_next()"),
        ("retdm_keras.cli.train", "import retdm_keras\nretdm_keras.__version__"),
        ("retdm_keras.cli.train", "def f(args):\n    return args._written, self._x"),
        ("retdm_keras.zoo.entry", "from retdm_keras.version import __version__"),
        ("retdm_keras.zoo.entry", "from retdm_keras.model import RETDM"),
        ("retdm_keras.model.retdm", "def f():\n    from retdm_keras.zoo import load"),
        ("retdm_keras.recipes.run", "from retdm_keras.zoo.entry import write_entry"),
        ("retdm_keras.cli.zoo", "from retdm_keras import recipes, zoo"),
        ("retdm_keras.data.folder_csv", "from retdm_keras.files import atomic_write"),
        ("retdm_keras.zoo.registry", "x = registry.resolve().parent.parent"),
    ],
)
def test_what_the_rules_allow(module, source):
    assert violations(module, source) == []


# 3. no loops


def test_the_library_has_no_import_cycles():
    graph = library_graph()
    found = unexpected_cycles(graph)
    assert found == [], "\n".join(_describe(graph, component) for component in found)


def test_the_known_cycle_is_still_there():
    """Once ``RETDM.from_preset`` stops importing the zoo, drop its ``KNOWN_CYCLE_EDGES`` entry."""
    graph = library_graph()
    for importer, imported in KNOWN_CYCLE_EDGES:
        assert imported in graph[importer], f"{importer} no longer imports {imported}"
        assert any({importer, imported} <= set(c) for c in cycles(graph)), (importer, imported)


def test_a_new_cycle_in_the_library_is_found():
    graph = library_graph()
    graph["retdm_keras.data.image_check"].add("retdm_keras.data.folder_csv")  # the old loop
    loop = ["retdm_keras.data.folder_csv", "retdm_keras.data.image_check"]
    assert unexpected_cycles(graph) == [loop]
    assert "retdm_keras.data.image_check -> retdm_keras.data.folder_csv" in _describe(graph, loop)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c", "e"}}, [["a", "b"], ["c", "d"]]),
        ({"a": {"a"}, "b": {"z"}}, []),  # importing oneself is no loop; z is not a module here
        ({"x": {"a"}, "a": {"b"}, "b": {"c", "a"}, "c": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycles_on_made_up_graphs(graph, expected):
    assert cycles(graph) == expected


def test_a_known_edge_is_the_only_exception():
    graph = {"m": {"z"}, "z": {"e"}, "e": {"m", "z"}}
    assert unexpected_cycles(graph, known={("m", "z")}) == [["e", "z"]]
    assert unexpected_cycles({"m": {"z"}, "z": {"m"}}, known={("m", "z")}) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("data.image_check", "def f():\n    from .folder_csv import x", "data.folder_csv"),
        ("zoo.entry", "from retdm_keras.zoo import head_weights", "zoo.head_weights"),
        ("zoo.entry", "from retdm_keras.zoo import ZooError", "zoo"),
        ("datasets.pipelines", "from . import load", "datasets"),
        ("cli", "from .common import CLIError\nimport argparse", "cli.common"),
        ("cli.train", "import numpy\nimport retdm_keras.zoo.entry", "zoo.entry"),
        ("cli.train", "if TYPE_CHECKING:\n    from retdm_keras.model import RETDM", "model"),
        ("zoo.entry", "def f():\n    import retdm_keras", ""),
        ("zoo.entry", "from retdm_keras.zoo.entry import x\nimport numpy", None),
    ],
)
def test_import_edges(module, source, expected):
    """Edges to library modules only, function-level and ``TYPE_CHECKING`` imports included."""
    names = set() if expected is None else {"retdm_keras" + (expected and "." + expected)}
    assert import_edges(f"retdm_keras.{module}", source) == names


def test_the_script_package_is_in_the_graph():
    graph = library_graph()
    assert "retdm_keras.cli" in graph["retdm_keras_cli"]  # imported inside main()
    assert "retdm_keras.data.image_decode" in graph["retdm_keras.data.image_check"]
