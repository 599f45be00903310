"""Recipes as YAML files: :func:`load_recipe`, :func:`save_recipe`, :func:`find_recipe`.

:func:`load_recipe` reads a file (or the name of a built-in recipe,
:mod:`retdm_keras.recipes.builtin`) and validates it with :meth:`Recipe.from_dict`, whose
errors name the file and the field. :func:`save_recipe` writes one back, with relative paths
rewritten for the new file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from retdm_keras.files import write_text, yaml_text
from retdm_keras.recipes.builtin import (
    builtin_recipe_names,
    builtin_recipe_path,
    builtin_recipes_dir,
)
from retdm_keras.recipes.errors import RecipeError
from retdm_keras.recipes.schema import Recipe

__all__ = ["find_recipe", "load_recipe", "save_recipe"]


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe YAML file, or the built-in recipe of that name.

    Raises:
        FileNotFoundError: no such file, and no built-in recipe of that name.
        RecipeError: (a ``ValueError``) invalid YAML or an invalid field, named in the message.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        builtin = builtin_recipe_path(source)
        if builtin is None:
            raise FileNotFoundError(
                f"recipe not found: {source} (not a file, nor a built-in recipe: "
                f"{', '.join(builtin_recipe_names())})"
            )
        source = os.fspath(builtin)
    with open(source, encoding="utf-8") as fh:
        try:
            config = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise RecipeError(f"{source}: invalid YAML ({err})") from err
    return Recipe.from_dict(config, source=source)


def save_recipe(
    recipe: Recipe, path: str | os.PathLike[str], *, comment: str | None = None
) -> Path:
    """Write ``recipe`` as a YAML file at ``path`` (atomically); returns the path.

    Relative paths (the data's path fields and a ``model.weights`` file) are rewritten
    relative to the new file's folder, so that they still name the same files; paths that
    start with ``${VAR}`` or ``~`` and absolute paths are kept as written. ``comment`` (lines)
    goes at the top as YAML comments.
    """
    target = Path(path)
    folder = target.parent.resolve()

    def moved(value: str) -> str:
        if value.startswith(("${", "~")) or os.path.isabs(value):
            return value
        try:
            return os.path.relpath(recipe.base_dir / value, folder)
        except ValueError:  # pragma: no cover - another drive on Windows
            return os.fspath(recipe.base_dir / value)

    config = recipe.to_dict()
    for key in recipe.data.path_fields:
        if config["data"].get(key) is not None:
            config["data"][key] = moved(config["data"][key])
    weights = config["model"]["weights"]
    if weights not in (None, "imagenet") and weights.lower() != "none":  # a weights file
        config["model"]["weights"] = moved(weights)
    Recipe.from_dict(config, source=os.fspath(target))  # what is written loads back
    header = "".join(f"# {line}\n" for line in (comment or "").splitlines())
    write_text(target, header + yaml_text(config) + "\n")
    return target


def find_recipe(name: str, recipes_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The recipe file in ``recipes_dir`` (default: the built-in recipes) whose ``name`` is
    ``name`` (``<dir>/<name>.yaml`` first), or None."""
    folder = Path(recipes_dir) if recipes_dir is not None else builtin_recipes_dir()
    if not folder.is_dir():
        return None
    direct = folder / f"{name}.yaml"
    candidates = [direct] if direct.is_file() else []
    candidates += [p for p in sorted(folder.glob("*.yaml")) if p != direct]
    for path in candidates:
        try:
            if load_recipe(path).name == name:
                return path
        except (OSError, ValueError):
            continue
    return None
