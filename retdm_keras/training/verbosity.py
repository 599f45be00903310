"""Keras verbosity as the training functions and the command line resolve it."""

from __future__ import annotations

import sys

__all__ = ["resolve_verbose"]


def resolve_verbose(verbose: int | str) -> int:
    """Keras verbosity: ``"auto"`` → 1 (progress bars) on a terminal, 2 (a line per epoch)
    when stdout is a file or a pipe, where bars become carriage returns and colour codes."""
    if verbose != "auto":
        return int(verbose)
    isatty = getattr(sys.stdout, "isatty", None)
    return 1 if isatty is not None and isatty() else 2
