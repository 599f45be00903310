"""The recipe reference page, generated from the recipe schema.

Field names, types, defaults and whether a field is required come from
``retdm_keras.recipes.schema`` (the ``DataSpec`` / ``ModelSpec`` / ``TrainingSpec`` / ``Recipe``
dataclasses and the table of data formats); the one sentence per field that says what it
means comes from ``recipe_fields.yaml`` beside this file. :func:`problems` lists the fields
that have no sentence and the sentences whose field is gone; the build fails on any.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

PAGE = "reference/recipes.md"
FIELDS_FILE = Path(__file__).with_name("recipe_fields.yaml")


def descriptions() -> dict[str, Any]:
    return yaml.safe_load(FIELDS_FILE.read_text(encoding="utf-8"))


def schema_fields() -> dict[str, Any]:
    """What the schema defines: ``{"recipe": [...], "formats": [...], "data": {format:
    {field: (kind, required)}}, "model": [Field], "training": [Field]}``."""
    from retdm_keras.recipes import schema

    return {
        "recipe": [f.name for f in dataclasses.fields(schema.Recipe) if f.name != "source"],
        "formats": list(schema.DATA_FORMATS),
        "data": {fmt: dict(fields) for fmt, fields in schema._DATA_FIELDS.items()},
        "model": list(dataclasses.fields(schema.ModelSpec)),
        "training": list(dataclasses.fields(schema.TrainingSpec)),
    }


def problems() -> list[str]:
    """Schema fields without a description, and descriptions of fields the schema lacks."""
    schema, text = schema_fields(), descriptions()
    expected = {
        "recipe": set(schema["recipe"]),
        "formats": set(schema["formats"]),
        "model": {f.name for f in schema["model"]},
        "training": {f.name for f in schema["training"]},
    }
    out = []
    for section, names in expected.items():
        written = set(text.get(section) or {})
        out += [f"{section}.{n}: no description" for n in sorted(names - written)]
        out += [f"{section}.{n}: not in the schema" for n in sorted(written - names)]
    data_text = text.get("data") or {}
    for fmt in sorted(set(schema["data"]) | set(data_text)):
        names, written = set(schema["data"].get(fmt, {})), set(data_text.get(fmt) or {})
        out += [f"data.{fmt}.{n}: no description" for n in sorted(names - written)]
        out += [f"data.{fmt}.{n}: not in the schema" for n in sorted(written - names)]
    return out


def _yaml_value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(map(str, value)) + "]`"
    return f"`{value}`"


def _type(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    readable = {
        "tuple[int, int, int]": "3 integers",
        "tuple[float, float, float] | None": "3 numbers or null",
        "str | None": "string or null",
        "float | None": "number or null",
        "bool | None": "true, false or null",
        "float": "number",
        "int": "integer",
        "str": "string",
        "bool": "true or false",
    }
    return readable.get(text, text)


_KINDS = {
    "path": "path",
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "true or false",
}


def _spec_table(fields: list, text: dict[str, str]) -> list[str]:
    lines = ["| field | type | default | what it means |", "|---|---|---|---|"]
    for f in fields:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(
            f"| `{f.name}` | {_type(f.type)} | {_yaml_value(default)} | {text.get(f.name, '')} |"
        )
    return lines


def _builtin_table() -> list[str]:
    from retdm_keras.recipes import builtin_recipe_names, load_recipe

    lines = ["| name | data | format | backbone | epochs |", "|---|---|---|---|---|"]
    for name in builtin_recipe_names():
        recipe = load_recipe(name)
        epochs = " + ".join(map(str, recipe.training.epochs))
        lines.append(
            f"| `{name}` | {recipe.dataset} | `{recipe.data.format}` | "
            f"`{recipe.model.backbone}` | {epochs} |"
        )
    return lines


def render() -> str:
    """The whole page."""
    schema, text = schema_fields(), descriptions()
    lines = [
        "# Recipe reference",
        "",
        "<!-- generated from retdm_keras/recipes/schema.py and docs/_gen/recipe_fields.yaml "
        "by docs/_gen/gen_recipes.py; do not edit -->",
        "",
        "A recipe is a YAML file with the sections below; "
        "[Model zoo and recipes](../guides/zoo-and-recipes.md) shows a whole one. "
        "Unknown fields and values of the wrong type are errors that name the field "
        "(`my.yaml: model.lam: expected a number, got 'high'`). Paths are kept as written and "
        "resolved when the data is read: `${NAME}` is an environment variable "
        "(`${RETDM_DATA_DIR}` for the data folder), `~` the home folder, and a relative path "
        "is relative to the recipe file.",
        "",
        "## Top level",
        "",
        "| field | what it means |",
        "|---|---|",
    ]
    lines += [f"| `{n}` | {text['recipe'][n]} |" for n in schema["recipe"]]
    lines += [
        "",
        "## `data`",
        "",
        "`format` chooses the reader; each format has its own fields. "
        "Fields marked required must be given.",
        "",
        "| format | what it reads |",
        "|---|---|",
    ]
    lines += [f"| [`{f}`](#format-{f}) | {text['formats'][f]} |" for f in schema["formats"]]
    for fmt, fields in schema["data"].items():
        lines += [
            "",
            f"### format: {fmt}",
            "",
            "| field | type | required | what it means |",
            "|---|---|---|---|",
        ]
        for name, (kind, required) in fields.items():
            lines.append(
                f"| `{name}` | {_KINDS.get(kind, kind)} | {'yes' if required else ''} | "
                f"{text['data'][fmt][name]} |"
            )
    lines += [
        "",
        "## `model`",
        "",
        "The arguments of `retdm_keras.RETDM`; a field left out takes the default below.",
        "",
    ]
    lines += _spec_table(schema["model"], text["model"])
    lines += [
        "",
        "## `training`",
        "",
        "The arguments of `retdm_keras.fit_stages`, the optimiser and the batches.",
        "",
    ]
    lines += _spec_table(schema["training"], text["training"])
    lines += ["", "## Built-in recipes", "", "They ship inside the package and go by name.", ""]
    lines += _builtin_table()
    return "\n".join(lines).rstrip() + "\n"
