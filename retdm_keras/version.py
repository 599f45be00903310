"""The package's version, ``retdm_keras.__version__``, in a module that imports nothing (the
zoo records it in an entry's metadata without importing the package root, which imports it)."""

__version__ = "0.1.0"
