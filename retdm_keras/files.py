"""Small file helpers shared by the library: atomic writes, strict JSON, YAML text, sha256.

Every write goes to a temporary file in the target's folder, is flushed to disk, and is then
renamed into place with ``os.replace``: a kill leaves either the old file or the new one,
never half a file, and no temporary file stays behind on failure.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_json(folder / "a.json", {"x": float("nan")})
    >>> read_json(folder / "a.json")
    {'x': None}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "copy_file",
    "jsonable",
    "read_json",
    "retdm_features_dir",
    "sha256_file",
    "write_json",
    "write_text",
    "yaml_text",
]


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[str], Any], suffix: str = ""
) -> Path:
    """Call ``write(temporary_path)``, then rename the file to ``path`` in one step.

    Args:
        path: the file to write (its folder is created).
        write: writes the content to the path it is given.
        suffix: the temporary file's name ends with ``.tmp<suffix>`` (for writers that
            insist on an extension, e.g. ``".weights.h5"`` or ``".keras"``).

    Returns:
        ``path`` as a ``Path``. The file gets the permissions of a new file (umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}"
    )
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as written:  # on disk before the rename
            os.fsync(written.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def copy_file(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy the bytes of ``source`` to ``target`` atomically."""
    return atomic_write(target, lambda temporary: shutil.copyfile(source, temporary))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as fh:
            fh.write(text)

    return atomic_write(path, write)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as numbers and NaN/inf as ``None`` (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON, atomically (NaN/inf become ``null``)."""
    return write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON content of ``path``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid JSON (the message names the file).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{os.fspath(path)}: invalid JSON ({err})") from err


def yaml_text(mapping: Mapping[str, Any]) -> str:
    """``mapping`` as YAML: block mappings in key order, lists of scalars inline
    (``epochs: [4, 1, 2]``), no trailing newline."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(
        list, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
    )
    return yaml.dump(dict(mapping), Dumper=Dumper, sort_keys=False, width=100).rstrip()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def retdm_features_dir() -> Path:
    """``$KERAS_HOME/retdm_features`` (``~/.keras/retdm_features`` without ``KERAS_HOME``),
    read now: the frozen-feature cache and the converted backbones (``backbones/``) live
    there."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "retdm_features"
