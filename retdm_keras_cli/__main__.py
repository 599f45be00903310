"""``python -m retdm_keras_cli``: the ``retdm-keras`` console script."""

from retdm_keras_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
