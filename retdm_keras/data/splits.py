"""Split files: a JSON object naming the files of each split (``train``, ``val``, ...)."""

from __future__ import annotations

import os

from retdm_keras.files import read_json

__all__ = ["load_split"]


def load_split(split_json_path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a ``{"train": [...], "val": [...], "test": [...]}`` split file.

    Any split names are accepted; each must map to a list of filename strings
    without repeats.

    Raises:
        ValueError: the JSON is not such an object, or a split repeats a name.
    """
    path = os.fspath(split_json_path)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON object of split name -> filenames")
    out: dict[str, list[str]] = {}
    for split, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: split {split!r} must be a list of filename strings")
        if len(set(names)) != len(names):
            dup = next(n for i, n in enumerate(names) if n in names[:i])
            raise ValueError(f"{path}: split {split!r} lists {dup!r} more than once")
        out[str(split)] = list(names)
    return out
