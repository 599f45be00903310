"""The recipes shipped with the library: ``retdm_keras/recipes/builtin/<name>.yaml``.

They are package data, found through :mod:`importlib.resources`, so an installed wheel has
them too; ``retdm-keras train --recipe scene`` takes a built-in recipe by its name.

    >>> "scene" in builtin_recipe_names()
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["builtin_recipe_names", "builtin_recipe_path", "builtin_recipes_dir"]

_FOLDER = "builtin"


def builtin_recipes_dir() -> Path:
    """The folder holding the built-in recipe files."""
    folder = resources.files(__package__) / _FOLDER
    if not isinstance(folder, Path):  # pragma: no cover - a zipped install
        raise RuntimeError(f"the built-in recipes are not plain files here: {folder}")
    return folder


def builtin_recipe_names() -> list[str]:
    """The names of the built-in recipes (each file is ``<name>.yaml``), sorted."""
    return sorted(path.stem for path in builtin_recipes_dir().glob("*.yaml"))


def builtin_recipe_path(name: str) -> Path | None:
    """The file of built-in recipe ``name``, or None when there is none."""
    if name not in builtin_recipe_names():
        return None
    return builtin_recipes_dir() / f"{name}.yaml"
