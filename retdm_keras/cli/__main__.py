"""``python -m retdm_keras.cli``: the ``retdm-keras`` command line."""

from retdm_keras.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
