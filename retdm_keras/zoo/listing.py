"""Listing the zoo: one row per name, with where its files are and its test metrics.

>>> from retdm_keras import zoo
>>> print(zoo.format_zoo_table(zoo.list_models()))      # doctest: +SKIP
name            version  status       mAP     O-F1    C-F1    dataset
coco            -        recipe only  -       -       -       MS-COCO 2014 ...
scene-features  1        local        0.8...
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retdm_keras.zoo.entry import file_matches
from retdm_keras.zoo.errors import ZooError
from retdm_keras.zoo.loading import default_cache_dir
from retdm_keras.zoo.registry import (
    default_registry_path,
    entry_files_dir,
    read_registry,
    recipe_stubs,
)

__all__ = ["format_zoo_table", "list_models"]

_TABLE_METRICS = ("mAP", "O-F1", "C-F1")


def _status(
    name: str, record: Mapping[str, Any], registry: Path, cache: Path, base_url: str | None
) -> str:
    files = record.get("files") or {}
    if all(file_matches(cache / name / record["version"] / f, i) for f, i in files.items()):
        return "cached"
    try:
        local = entry_files_dir(record, registry)
    except ZooError:  # a record that points outside the package: never used
        local = None
    if local is not None and all(file_matches(local / f, i) for f, i in files.items()):
        return "local"
    return "downloadable" if base_url else "unavailable"


def list_models(
    *,
    registry: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per zoo name: published checkpoints and recipes without one, by name.

    Each row: ``name``, ``version``, ``status``, ``dataset``, ``metrics``, ``recipe`` (the
    built-in recipe that makes it, when the registry says). ``status`` is ``"cached"`` (all
    files valid in the cache), ``"local"`` (the files are on this machine: a packaged entry
    or the registered folder), ``"downloadable"`` (a download URL is known),
    ``"unavailable"`` (published, but none of these) or ``"recipe only"`` (a recipe stub: no
    checkpoint published). A user registry also lists the packaged registry's recipe stubs.
    """
    path = Path(registry) if registry is not None else default_registry_path()
    content = read_registry(path)
    cache = Path(cache_dir or default_cache_dir())
    base_url = os.environ.get("RETDM_ZOO_URL") or content.get("base_url")
    models = {**recipe_stubs(path), **content["models"]}
    rows = []
    for name, model in sorted(models.items()):
        versions = model.get("versions") or {}
        record = versions.get(model.get("latest")) if versions else None
        if record is None:
            status, version, metrics = "recipe only", None, None
        else:
            status = _status(name, record, path, cache, base_url)
            version, metrics = record["version"], record.get("metrics")
        recipe = (record or {}).get("recipe") or {}
        rows.append(
            {
                "name": name,
                "version": version,
                "status": status,
                "dataset": (record or {}).get("dataset")
                or model.get("dataset")
                or recipe.get("dataset", ""),
                "metrics": metrics,
                "recipe": model.get("recipe"),
            }
        )
    return rows


def format_zoo_table(rows: Sequence[Mapping[str, Any]], *, digits: int = 3) -> str:
    """Render :func:`list_models` rows as a plain-text table."""
    header = ["name", "version", "status", *_TABLE_METRICS, "dataset"]
    table = [header]
    for row in rows:
        metrics = row.get("metrics") or {}
        cells = []
        for metric in _TABLE_METRICS:
            value = metrics.get(metric)
            cells.append("-" if value is None else f"{float(value):.{digits}f}")
        dataset = str(row.get("dataset") or "")
        table.append(
            [
                str(row["name"]),
                str(row.get("version") or "-"),
                str(row["status"]),
                *cells,
                dataset if len(dataset) <= 48 else dataset[:45] + "...",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )
