"""The errors of the model zoo, and its JSON reader that raises them."""

from __future__ import annotations

import os
from typing import Any

from retdm_keras.files import read_json

__all__ = ["NoCheckpointError", "ZooError", "ZooHashError", "read_zoo_json"]


class ZooError(ValueError):
    """A zoo entry, registry or download problem (the message says which and what to do)."""


class ZooHashError(ZooError):
    """A file whose sha256 differs from the one recorded for it."""


class NoCheckpointError(ZooError, LookupError):
    """A zoo name with a recipe but no published checkpoint."""


def read_zoo_json(path: str | os.PathLike[str]) -> Any:
    """The JSON content of ``path``; invalid JSON is a :class:`ZooError` naming the file."""
    try:
        return read_json(path)
    except ValueError as err:
        raise ZooError(str(err)) from err
