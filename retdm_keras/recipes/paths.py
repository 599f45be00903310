"""Recipe paths: ``${VAR}`` variables, ``~`` and paths relative to the recipe file.

``${RETDM_DATA_DIR}`` is the data folder. The library never guesses it: set the variable
(the Makefile's targets set it for ``make test``, ``make demo`` and ``make bench``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from retdm_keras.recipes.errors import RecipeError

__all__ = ["DATA_DIR_ENV", "default_data_dir", "expand_path"]

DATA_DIR_ENV = "RETDM_DATA_DIR"
"""The environment variable naming the data folder that recipes refer to."""

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def default_data_dir() -> Path | None:
    """``$RETDM_DATA_DIR`` (``~`` expanded), or None when it is not set."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def expand_path(value: str, *, base: str | os.PathLike[str] | None = None, where: str = "") -> Path:
    """Resolve ``${VAR}``, ``~`` and a relative ``value`` (against ``base``).

    >>> expand_path("images/a.png", base="/data")
    PosixPath('/data/images/a.png')

    Raises:
        RecipeError: an unset variable (the message says which, and where it is used).
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == DATA_DIR_ENV and default_data_dir() is None:
            raise RecipeError(
                f"{where}: uses ${{{DATA_DIR_ENV}}}, which is not set: set {DATA_DIR_ENV} to "
                f"your data folder (the Makefile's targets set it)"
            )
        if name not in os.environ:
            raise RecipeError(f"{where}: environment variable ${{{name}}} is not set")
        return os.fspath(default_data_dir()) if name == DATA_DIR_ENV else os.environ[name]

    path = Path(os.path.expanduser(_VARIABLE.sub(substitute, value)))
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path
