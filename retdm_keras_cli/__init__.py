"""The ``retdm-keras`` console script: :func:`retdm_keras.cli.main`, started fast.

``import retdm_keras`` loads TensorFlow (its Keras classes must register for
``keras.saving.load_model``), which takes seconds. This entry point imports the package in
its lazy mode instead (``RETDM_KERAS_LAZY_IMPORT=1``, set only for that import, so that it
reaches no subprocess), so ``--help``, ``zoo list`` and usage errors never load TensorFlow;
the commands that need it import the whole library first. Nothing in ``retdm_keras``
imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

_LAZY_IMPORT_ENV = "RETDM_KERAS_LAZY_IMPORT"  # read by retdm_keras/__init__.py

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    previous = os.environ.get(_LAZY_IMPORT_ENV)
    os.environ[_LAZY_IMPORT_ENV] = "1"
    try:
        from retdm_keras.cli import main as cli_main
    finally:
        if previous is None:
            del os.environ[_LAZY_IMPORT_ENV]
        else:
            os.environ[_LAZY_IMPORT_ENV] = previous
    return cli_main(argv)
