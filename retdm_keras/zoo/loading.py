"""Loading zoo models: hash-checked files in a cache, copied or downloaded once.

:func:`load` takes an entry folder, or a registry name (``"scene-features"``, or
``"scene-features@1"`` for a version). Files come from the cache,
``$KERAS_HOME/retdm_zoo/<name>/<version>/`` (or ``cache_dir``), else are copied from the
record's folder on this machine (a packaged entry or a ``local_dir``), else are downloaded
with ``keras.utils.get_file`` from the registry's ``url_template``
(``{base_url}/{name}/{version}/{file}``; ``$RETDM_ZOO_URL`` overrides ``base_url``).

Every file is checked against the registry's sha256; a mismatch (a truncated, corrupted or
tampered file) is a :class:`ZooHashError` and the bad file is never left in the cache. A
failed download (HTTP 404/500, a dropped connection) is a :class:`ZooError` naming the file,
the URL and the status; each download goes to a staging folder and is renamed into place only
once verified, so the cache never holds half a file. A cache folder that cannot be written is
a :class:`ZooError` saying so (pass ``cache_dir``). ``offline=True`` (or
``RETDM_ZOO_OFFLINE=1``) never downloads. A name that only has a recipe raises
:class:`NoCheckpointError` with the commands that make the checkpoint; the zoo never hands out
a randomly initialised model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retdm_keras.files import copy_file, sha256_file
from retdm_keras.zoo.entry import file_matches, load_entry
from retdm_keras.zoo.errors import ZooError, ZooHashError
from retdm_keras.zoo.registry import (
    URL_TEMPLATE,
    default_registry_path,
    entry_files_dir,
    find_record,
    read_registry,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM

__all__ = ["default_cache_dir", "fetch", "load"]


def default_cache_dir() -> Path:
    """``$KERAS_HOME/retdm_zoo`` (Keras's own cache convention; ``~/.keras`` by default)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "retdm_zoo"


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("RETDM_ZOO_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _failure(err: BaseException) -> str:
    """What went wrong in a download, e.g. ``HTTP 404 Not Found``, from the error chain."""
    import urllib.error

    cause: BaseException | None = err
    for _ in range(8):
        if cause is None or isinstance(cause, urllib.error.URLError):
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, urllib.error.HTTPError):
        return f"HTTP {cause.code} {cause.reason}"
    if isinstance(cause, urllib.error.ContentTooShortError):
        return f"the connection closed early ({cause.reason})"
    if isinstance(cause, urllib.error.URLError):
        return str(cause.reason)
    return (str(err) or type(err).__name__).splitlines()[0]


def _download(url: str, target: Path, sha256: str, size: int | None = None) -> None:
    """Download ``url`` to ``target`` via a staging folder; nothing stays on any failure.

    The file is checked (size, sha256) in the staging folder and only then renamed into
    place, so the cache never holds a partial, truncated or tampered file.
    """
    import keras

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".download-", dir=target.parent)
    try:
        try:
            fetched = keras.utils.get_file(
                fname=target.name, origin=url, cache_dir=staging, cache_subdir=""
            )
        except Exception as err:
            raise ZooError(
                f"download of {target.name} failed: {_failure(err)} ({url}); "
                f"no partial file was kept in {target.parent}"
            ) from err
        got = os.path.getsize(fetched)
        if sha256_file(fetched) != sha256:
            length = "" if size is None or got == size else f"; {got} bytes, expected {size}"
            raise ZooHashError(
                f"{url}: sha256 does not match the registry ({sha256[:16]}...{length}): "
                f"truncated, corrupted or tampered download, not kept"
            )
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prepare_cache(folder: Path, stale: Sequence[str]) -> None:
    """Create ``folder``, remove its ``stale`` files, and check it takes new files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in stale:
            if (folder / name).exists() or (folder / name).is_symlink():
                (folder / name).unlink()  # stale or corrupted: never trusted
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise ZooError(
            f"the zoo cache folder {folder} is not writable ({err.strerror or err}): pass "
            f"cache_dir= a writable folder, or set KERAS_HOME"
        ) from err


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    registry: str | os.PathLike[str] | None = None,
) -> Path:
    """Make the files of registry model ``name`` (``"name@version"``) present in the cache.

    Order: valid cached files; else the record's folder here (packaged entry or
    ``local_dir``); else a download from ``$RETDM_ZOO_URL`` (or the registry's
    ``base_url``), unless offline. :func:`load` skips the cache for a complete local entry.

    Returns:
        The cached entry folder ``<cache>/<name>/<version>``.
    """
    name, _, version = name.partition("@")
    path = Path(registry) if registry is not None else default_registry_path()
    content = read_registry(path)
    record = find_record(content, path, name, version or None)
    version = record["version"]
    files: dict[str, dict] = record["files"]
    local = entry_files_dir(record, path)
    target = Path(cache_dir or default_cache_dir()) / name / version
    needed = [file for file, info in files.items() if not file_matches(target / file, info)]
    if needed:
        _prepare_cache(target, needed)
    if needed and local is not None and local.is_dir():
        for file in list(needed):
            if file_matches(local / file, files[file]):
                copy_file(local / file, target / file)
                needed.remove(file)
    if not needed:
        return target
    if _offline(offline):
        raise ZooError(
            f"{name} version {version}: {', '.join(needed)} not in the cache {target} and "
            f"offline mode is on (offline=True or RETDM_ZOO_OFFLINE=1)"
        )
    base_url = os.environ.get("RETDM_ZOO_URL") or content.get("base_url")
    if not base_url:
        where = "" if local is None else f", nor complete in {local}"
        raise ZooError(
            f"{name} version {version} is not cached{where}, and the registry has no download "
            f"URL: set RETDM_ZOO_URL to the zoo's base URL"
        )
    template = content.get("url_template") or URL_TEMPLATE
    for file in needed:
        url = template.format(base_url=base_url.rstrip("/"), name=name, version=version, file=file)
        _download(url, target / file, files[file]["sha256"], files[file].get("size"))
    return target


def load(
    name_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    registry: str | os.PathLike[str] | None = None,
) -> RETDM:
    """A zoo model: an entry folder, or a registry name (``"name"`` / ``"name@version"``).

    Args:
        name_or_path: an entry folder, or a name in the registry.
        cache_dir: cache root (default ``$KERAS_HOME/retdm_zoo``).
        offline: never download (default: ``$RETDM_ZOO_OFFLINE``).
        registry: the registry file (default ``$RETDM_ZOO_REGISTRY``, else the packaged one).

    Raises:
        NoCheckpointError: the name only has a recipe (the message gives the commands).
        ZooHashError: a file does not match its recorded sha256.
        ZooError: unknown name, offline without a cached copy, download failure.
    """
    path = Path(os.path.expanduser(os.fspath(name_or_path)))
    if path.is_dir():
        return load_entry(path)
    text = os.fspath(name_or_path)
    if os.sep in text or text.startswith("."):
        raise ZooError(f"zoo entry folder not found: {text}")
    local = _complete_local_entry(text, registry)
    if local is not None:  # shipped with the package (or a registered folder): read in place
        return load_entry(local)
    return load_entry(fetch(text, cache_dir=cache_dir, offline=offline, registry=registry))


def _complete_local_entry(name: str, registry: str | os.PathLike[str] | None) -> Path | None:
    """The record's folder on this machine when every file in it matches its sha256."""
    name, _, version = name.partition("@")
    path = Path(registry) if registry is not None else default_registry_path()
    record = find_record(read_registry(path), path, name, version or None)
    local = entry_files_dir(record, path)
    files = record["files"]
    if local is not None and all(file_matches(local / f, info) for f, info in files.items()):
        return local
    return None
