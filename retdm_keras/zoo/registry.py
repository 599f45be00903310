"""The zoo registry: which checkpoints exist, their files' sha256 and where to get them.

A registry is one JSON file::

    {"format_version": 1, "base_url": null, "url_template": "{base_url}/{name}/{version}/{file}",
     "models": {
       "scene-features": {"recipe": "scene-features", "latest": "1", "versions": {"1": {
           "name": ..., "version": "1", "files": {"config.json": {"sha256": ..., "size": ...}},
           "metrics": ..., "recipe": {...}, "packaged_entry": "scene-features/1"}}},
       "coco": {"recipe": "coco", "dataset": "MS-COCO 2014 ...", "description": "..."}}}

A model with ``versions`` is a published checkpoint; one without is a *recipe stub*: a
built-in recipe that has no checkpoint yet (``recipe`` names it, so that
:class:`~retdm_keras.zoo.errors.NoCheckpointError` can say how to make one). The zoo never
reads the recipes themselves.

The *packaged* registry (``retdm_keras/zoo/registry.json``, package data) is the default;
``$RETDM_ZOO_REGISTRY`` or ``registry=`` name a user registry instead. A version's files are
found through ``packaged_entry`` (a folder under ``retdm_keras/zoo/entries/``, shipped with
the package) or ``local_dir`` (a folder anywhere, relative to the registry file or absolute;
only user registries get new ones). :func:`publish` into the packaged registry copies the
entry to ``entries/<name>/<version>/`` and records that relative path, so the package stays
portable. Model cards go to ``<registry folder>/cards/<name>.md``.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from retdm_keras.files import copy_file, write_json, write_text
from retdm_keras.zoo.entry import (
    CARD_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    METRICS_FILE,
    entry_files,
    file_info,
    load_entry,
    verify_entry,
)
from retdm_keras.zoo.errors import NoCheckpointError, ZooError, read_zoo_json

__all__ = [
    "REGISTRY_ENV",
    "URL_TEMPLATE",
    "card_path",
    "default_registry_path",
    "entry_files_dir",
    "find_record",
    "is_packaged",
    "packaged_entries_dir",
    "packaged_registry_path",
    "publish",
    "read_registry",
    "recipe_stubs",
]

URL_TEMPLATE = "{base_url}/{name}/{version}/{file}"
REGISTRY_ENV = "RETDM_ZOO_REGISTRY"
_PORTABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# --------------------------------------------------------------------------- where
def _package_dir() -> Path:
    folder = resources.files(__package__)
    if not isinstance(folder, Path):  # pragma: no cover - a zipped install
        raise ZooError(f"the zoo's package data is not plain files here: {folder}")
    return folder


def packaged_registry_path() -> Path:
    """The registry shipped with the package (``retdm_keras/zoo/registry.json``)."""
    return _package_dir() / "registry.json"


def packaged_entries_dir() -> Path:
    """The folder of the entries shipped with the package (``retdm_keras/zoo/entries``)."""
    return _package_dir() / "entries"


def default_registry_path() -> Path:
    """``$RETDM_ZOO_REGISTRY``, else the packaged registry."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser() if env else packaged_registry_path()


def is_packaged(registry: str | os.PathLike[str]) -> bool:
    """Whether ``registry`` is the packaged registry file."""
    return Path(registry).resolve() == packaged_registry_path().resolve()


def card_path(registry: str | os.PathLike[str], name: str) -> Path:
    """Where :func:`publish` writes the model card of ``name``: ``<folder>/cards/<name>.md``."""
    return Path(registry).parent / "cards" / f"{name}.md"


# --------------------------------------------------------------------------- reading
def read_registry(registry: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The registry's content (an empty registry when the file does not exist)."""
    path = Path(registry) if registry is not None else default_registry_path()
    if not path.is_file():
        return {
            "format_version": FORMAT_VERSION,
            "base_url": None,
            "url_template": URL_TEMPLATE,
            "models": {},
        }
    content = read_zoo_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("models"), dict):
        raise ZooError(f"{path}: not a zoo registry (no 'models' mapping)")
    return content


def recipe_stubs(registry: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The packaged registry's recipe stubs (models without versions) for a user registry,
    so that it knows the built-in recipes too; empty for the packaged registry itself."""
    if is_packaged(registry):
        return {}
    models = read_registry(packaged_registry_path())["models"]
    return {name: model for name, model in models.items() if not model.get("versions")}


def find_record(
    content: Mapping[str, Any], registry: Path, name: str, version: str | None = None
) -> dict[str, Any]:
    """The record of ``name`` (its latest version, or ``version``) in ``content``.

    Raises:
        NoCheckpointError: ``name`` is a recipe stub (the message gives the commands).
        ZooError: an unknown name or version.
    """
    model = content["models"].get(name) or recipe_stubs(registry).get(name)
    if model is None or not model.get("versions"):
        recipe = (model or {}).get("recipe")
        if recipe:
            raise NoCheckpointError(
                f"no published checkpoint for {name!r} (only a recipe); make one with "
                f"`retdm-keras train --recipe {recipe} --out DIR`, then `retdm-keras publish DIR`"
            )
        known = sorted(n for n, m in content["models"].items() if m.get("versions"))
        raise ZooError(f"unknown zoo model {name!r}; published in {registry}: {known or 'none'}")
    version = version or model.get("latest")
    if version not in model["versions"]:
        raise ZooError(
            f"{name!r} has no version {version!r}; versions: {sorted(model['versions'])}"
        )
    return model["versions"][version]


def entry_files_dir(record: Mapping[str, Any], registry: str | os.PathLike[str]) -> Path | None:
    """The folder holding a record's files on this machine (``packaged_entry`` or
    ``local_dir``), or None; the folder may be missing."""
    packaged = record.get("packaged_entry")
    if packaged:
        parts = PurePosixPath(packaged).parts
        if PurePosixPath(packaged).is_absolute() or ".." in parts:
            raise ZooError(f"{registry}: packaged_entry {packaged!r} must stay inside the package")
        return packaged_entries_dir().joinpath(*parts)
    local = record.get("local_dir")
    if not local:
        return None
    path = Path(local)
    return (
        path
        if path.is_absolute()
        else Path(os.path.normpath(Path(registry).resolve().parent / path))
    )


# --------------------------------------------------------------------------- publishing
def _next_version(versions: Mapping[str, Any], files: Mapping[str, Any]) -> str:
    """The version of identical files already published, else one more than the highest."""
    for version, record in versions.items():
        old = record.get("files", {})
        same = [f for f in files if f == CONFIG_FILE or f.endswith(".weights.h5")]
        if all(old.get(f, {}).get("sha256") == files[f]["sha256"] for f in same):
            return version
    numbers = [int(v) for v in versions if str(v).isdigit()]
    return str(max(numbers, default=0) + 1)


def _version_key(version: str) -> tuple:
    return (int(version),) if str(version).isdigit() else (0, str(version))


def _relative_to_registry(entry: Path, registry: Path) -> str:
    """The entry folder relative to the registry when both live in one tree, else absolute."""
    entry, root = entry.resolve(), registry.resolve().parent.parent
    try:
        entry.relative_to(root)
    except ValueError:
        return os.fspath(entry)
    return os.path.relpath(entry, registry.resolve().parent)


def _copy_into_package(folder: Path, name: str, version: str, files: Any) -> str:
    """Copy the entry files to ``entries/<name>/<version>/``; the relative path (POSIX)."""
    for part, what in ((name, "name"), (version, "version")):
        if not _PORTABLE.fullmatch(part):
            raise ZooError(
                f"{what} {part!r} cannot be a folder of the packaged registry: use letters, "
                f"digits, '.', '_' or '-'"
            )
    root = packaged_entries_dir().resolve()
    target = (root / name / version).resolve()
    if not target.is_relative_to(root):  # pragma: no cover - excluded by the check above
        raise ZooError(f"{target} is outside the package's entries folder {root}")
    if target != folder.resolve():
        for file in files:
            copy_file(folder / file, target / file)
    return f"{name}/{version}"


def publish(
    entry_dir: str | os.PathLike[str],
    *,
    registry: str | os.PathLike[str] | None = None,
    name: str | None = None,
    version: str | None = None,
    base_url: str | None = None,
    write_card: bool = True,
) -> dict[str, Any]:
    """Validate an entry folder and add (or update) it in the registry.

    Args:
        entry_dir: the entry folder (from ``train_recipe`` or ``write_entry``).
        registry: the registry file (created if missing); default ``$RETDM_ZOO_REGISTRY``,
            else the packaged registry. Into the packaged registry the entry is copied to
            ``retdm_keras/zoo/entries/<name>/<version>/`` (recorded as ``packaged_entry``);
            a user registry records the folder where it is (``local_dir``).
        name: the zoo name (default: the entry's).
        version: the version (default: the version already holding these exact files,
            else the next integer).
        base_url: set the registry's download base URL (files are then expected at
            ``{base_url}/{name}/{version}/{file}``).
        write_card: also write the model card to ``<registry folder>/cards/<name>.md``.

    Returns:
        The registry record of this version.

    Raises:
        ZooError / ZooHashError: the entry is incomplete, modified, or does not load; or a
            name/version that cannot be a folder of the packaged registry.
    """
    folder = Path(entry_dir)
    metadata = verify_entry(folder)
    load_entry(folder, verify=False)  # the config builds a model that takes the weights
    path = Path(registry) if registry is not None else default_registry_path()
    content = read_registry(path)
    name = name or metadata["name"]
    files = {f: file_info(folder / f) for f in entry_files(metadata)}
    model = content["models"].setdefault(name, {})  # a recipe stub keeps its fields
    versions = model.setdefault("versions", {})
    version = str(version) if version is not None else _next_version(versions, files)
    record = {
        "name": name,
        "version": version,
        "dataset": metadata.get("dataset", ""),
        "description": metadata.get("description", ""),
        "published": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "created": metadata.get("created"),
        "library": metadata.get("library"),
        "backbone": metadata.get("model", {}).get("backbone"),
        "label_names": metadata.get("label_names"),
        "metrics": read_zoo_json(folder / METRICS_FILE),
        "recipe": metadata.get("recipe"),
        "files": files,
    }
    if is_packaged(path):
        record["packaged_entry"] = _copy_into_package(folder, name, version, files)
    else:
        record["local_dir"] = _relative_to_registry(folder, path)
    versions[version] = record
    model["latest"] = max(versions, key=lambda v: (str(v).isdigit(), _version_key(v)))
    if base_url is not None:
        content["base_url"] = base_url.rstrip("/")
    content.setdefault("url_template", URL_TEMPLATE)
    content["format_version"] = FORMAT_VERSION
    content["models"] = dict(sorted(content["models"].items()))
    write_json(path, content)
    if write_card:
        card = (folder / CARD_FILE).read_text(encoding="utf-8")
        card += "\n## Files (version " + version + ")\n\n| file | bytes | sha256 |\n|---|---|---|\n"
        card += "".join(f"| {f} | {i['size']} | `{i['sha256']}` |\n" for f, i in files.items())
        write_text(card_path(path, name), card)
    return record
