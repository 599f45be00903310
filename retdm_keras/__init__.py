"""retdm-keras: RETDM multi-label image classification for Keras 3.

Public API::

    from retdm_keras import RETDM, fit_stages, evaluate
    model = RETDM(num_labels=5, backbone="mobilenet_v2", weights="imagenet")
    fit_stages(model, train_ds, val_ds, epochs=(10, 5, 10))
    evaluate(y_test, model.predict(test_images))

``import retdm_keras`` imports the submodules (and so TensorFlow and Keras): that registers
the package's Keras classes, which ``keras.saving.load_model`` needs to rebuild a saved
model. The ``retdm-keras`` command imports the package with ``RETDM_KERAS_LAZY_IMPORT=1``
instead, so that ``--help`` and ``zoo list`` answer without loading TensorFlow: each public
name is then imported on first use (PEP 562), and :func:`import_all` imports them all.
"""

import importlib as _importlib
import os as _os

from retdm_keras.version import __version__ as __version__

_LAZY_IMPORT_ENV = "RETDM_KERAS_LAZY_IMPORT"

# Each name of __all__ and the submodule that defines it (a submodule names itself).
_ORIGINS: dict[str, str] = {
    "RETDM": "model",
    "SDL": "zero_shot",
    "SDLHead": "zero_shot",
    "ClassificationHead": "heads",
    "ImageEmbedder": "embedders",
    "LabelEmbedder": "embedders",
    "LabelNeighbors": "neighbors",
    "LossConfig": "model",
    "MeanAveragePrecision": "metrics",
    "MemoryBank": "memory_bank",
    "OverallF1": "metrics",
    "ReconstructionHead": "heads",
    "data": "data",
    "default_optimizer": "training",
    "evaluate": "metrics",
    "fit_stages": "training",
    "learning_rates_used": "training",
    "losses": "losses",
    "metrics": "metrics",
    "recipes": "recipes",
    "thresholds": "thresholds",
    "two_way_metric_loss": "losses",
    "zero_shot": "zero_shot",
    "zoo": "zoo",
}

__all__ = [
    "RETDM",
    "SDL",
    "SDLHead",
    "ClassificationHead",
    "ImageEmbedder",
    "LabelEmbedder",
    "LabelNeighbors",
    "LossConfig",
    "MeanAveragePrecision",
    "MemoryBank",
    "OverallF1",
    "ReconstructionHead",
    "data",
    "default_optimizer",
    "evaluate",
    "fit_stages",
    "learning_rates_used",
    "losses",
    "metrics",
    "recipes",
    "thresholds",
    "two_way_metric_loss",
    "zero_shot",
    "zoo",
]

_LAZY = _os.environ.get(_LAZY_IMPORT_ENV) == "1"

if not _LAZY:
    from retdm_keras import data, losses, metrics, recipes, thresholds, zero_shot, zoo
    from retdm_keras.embedders import ImageEmbedder, LabelEmbedder
    from retdm_keras.heads import ClassificationHead, ReconstructionHead
    from retdm_keras.losses import two_way_metric_loss
    from retdm_keras.memory_bank import MemoryBank
    from retdm_keras.metrics import MeanAveragePrecision, OverallF1, evaluate
    from retdm_keras.model import RETDM, LossConfig
    from retdm_keras.neighbors import LabelNeighbors
    from retdm_keras.training import default_optimizer, fit_stages, learning_rates_used
    from retdm_keras.zero_shot import SDL, SDLHead
else:

    def __getattr__(name: str) -> object:
        """A public name's value, its submodule imported on first access (lazy mode only)."""
        origin = _ORIGINS.get(name)
        if origin is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = _importlib.import_module(f"{__name__}.{origin}")
        value = module if origin == name else getattr(module, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


def import_all() -> None:
    """Import every public name, as a plain ``import retdm_keras`` does; this registers the
    Keras classes. Does nothing more after an eager import."""
    for name in __all__:
        getattr(_importlib.import_module(__name__), name)
