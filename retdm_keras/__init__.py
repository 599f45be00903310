"""retdm-keras: RETDM multi-label image classification for Keras 3.

Public API::

    from retdm_keras import RETDM, fit_stages, evaluate
    model = RETDM(num_labels=5, backbone="mobilenet_v2", weights="imagenet")
    fit_stages(model, train_ds, val_ds, epochs=(10, 5, 10))
    evaluate(y_test, model.predict(test_images))
"""

from retdm_keras import data, losses, metrics, recipes, thresholds, zero_shot, zoo
from retdm_keras.embedders import ImageEmbedder, LabelEmbedder
from retdm_keras.heads import ClassificationHead, ReconstructionHead
from retdm_keras.losses import two_way_metric_loss
from retdm_keras.memory_bank import MemoryBank
from retdm_keras.metrics import MeanAveragePrecision, OverallF1, evaluate
from retdm_keras.model import RETDM
from retdm_keras.neighbors import LabelNeighbors
from retdm_keras.training import default_optimizer, fit_stages
from retdm_keras.zero_shot import SDL, SDLHead

__version__ = "0.1.0"

__all__ = [
    "RETDM",
    "SDL",
    "SDLHead",
    "ClassificationHead",
    "ImageEmbedder",
    "LabelEmbedder",
    "LabelNeighbors",
    "MeanAveragePrecision",
    "MemoryBank",
    "OverallF1",
    "ReconstructionHead",
    "data",
    "default_optimizer",
    "evaluate",
    "fit_stages",
    "losses",
    "metrics",
    "recipes",
    "thresholds",
    "two_way_metric_loss",
    "zero_shot",
    "zoo",
]
