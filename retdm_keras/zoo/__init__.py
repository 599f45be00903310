"""The RETDM model zoo: entry folders, a registry, and hash-checked, cached downloads.

One module per idea:

* :mod:`~retdm_keras.zoo.entry`: a checkpoint as a folder (config, weights, labels, metrics,
  model card, metadata with the sha256 of every file): :func:`write_entry`,
  :func:`verify_entry`, :func:`load_entry`, :func:`model_card`;
* :mod:`~retdm_keras.zoo.registry`: ``registry.json``, the packaged one by default
  (``$RETDM_ZOO_REGISTRY`` / ``registry=`` for another), recipe stubs, :func:`publish`;
* :mod:`~retdm_keras.zoo.loading`: :func:`load` / :func:`fetch` through the cache, each file
  checked against its sha256;
* :mod:`~retdm_keras.zoo.listing`: :func:`list_models`, :func:`format_zoo_table`;
* :mod:`~retdm_keras.zoo.errors`: :class:`ZooError`, :class:`ZooHashError`,
  :class:`NoCheckpointError`.

The registry, the model cards (``cards/<name>.md``) and the packaged entries
(``entries/<name>/<version>/``) are package data. The zoo only saves and loads: it never
imports the recipes, the training code or the command line.

    >>> from retdm_keras import zoo
    >>> "coco" in {row["name"] for row in zoo.list_models()}
    True
    >>> model = zoo.load("scene-features")                  # doctest: +SKIP
"""

from retdm_keras.zoo.entry import (
    CARD_FILE,
    CONFIG_FILE,
    ENTRY_FILES,
    FORMAT_VERSION,
    HEADS_ENTRY_FILES,
    HEADS_WEIGHTS_FILE,
    LABELS_FILE,
    METADATA_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    load_entry,
    model_card,
    verify_entry,
    write_entry,
)
from retdm_keras.zoo.errors import NoCheckpointError, ZooError, ZooHashError
from retdm_keras.zoo.listing import format_zoo_table, list_models
from retdm_keras.zoo.loading import default_cache_dir, fetch, load
from retdm_keras.zoo.registry import (
    URL_TEMPLATE,
    default_registry_path,
    packaged_entries_dir,
    packaged_registry_path,
    publish,
    read_registry,
)

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "ENTRY_FILES",
    "FORMAT_VERSION",
    "HEADS_ENTRY_FILES",
    "HEADS_WEIGHTS_FILE",
    "LABELS_FILE",
    "METADATA_FILE",
    "METRICS_FILE",
    "URL_TEMPLATE",
    "WEIGHTS_FILE",
    "NoCheckpointError",
    "ZooError",
    "ZooHashError",
    "default_cache_dir",
    "default_registry_path",
    "fetch",
    "format_zoo_table",
    "list_models",
    "load",
    "load_entry",
    "model_card",
    "packaged_entries_dir",
    "packaged_registry_path",
    "publish",
    "read_registry",
    "verify_entry",
    "write_entry",
]
