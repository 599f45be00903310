"""Frozen-backbone training: pooled backbone features, extracted once and cached on disk.

With the backbone frozen, ``f(x)`` is a fixed function of each input image up to its
dropout and projection: ``ImageEmbedder.backbone_features`` (preprocessing, backbone,
pooling). So the expensive part runs once, not once per epoch:

* the **plain view** (the evaluation transform) of the training set fills the memory bank,
  and that of the validation set drives the learning-rate schedule, ``(N, D)`` each;
* the **training set** gets ``V`` views (``views``): the plain view plus ``V - 1`` passes
  through the user's own augmented pipeline (the paper's corner/centre multi-scale crops
  and flips for :func:`retdm_keras.data.image_dataset`; ``plain_view=False``: ``V``
  augmented passes), giving ``(N, V, D)`` features by sample ``index``; every epoch of
  :func:`feature_dataset` draws one view per image.

Each array set is cached under ``cache_dir`` (default ``$KERAS_HOME/retdm_features``) as
``<key>.npz`` plus a ``<key>.json`` manifest, where the key is a sha256 of: the images
(file names relative to the image folder and a sha256 of each file's bytes — so a copied,
moved or re-checked-out folder hits the cache and an edited image does not), the labels,
the pipeline (image size, augmentation, seed, batch size), the backbone (name, width,
image size and a sha256 of its weights), the number of views and :data:`CACHE_VERSION`.
Files are written to a temporary name and moved into place (``os.replace``), the array file
first and the manifest last; a manifest whose key, file hash or shapes do not match is a stale or
corrupt entry, which is rebuilt with a warning, and a cache folder that cannot be written
(a read-only ``KERAS_HOME``) only costs a warning. Datasets that do not say what they read
(anything but an ``image_dataset`` as built) are extracted without a disk cache.

The backbone runs through :func:`retdm_keras.backbone_runtime.backbone_function`: ONNX
Runtime on a CPU (converted once per backbone and weights, kept in ``<cache_dir>/backbones``;
its features equal Keras' within ``PARITY_TOLERANCE`` of their scale, so the cache key does not
name the runtime), Keras elsewhere or with ``model.backbone_runtime = "keras"``.

``fit_stages(model, train, val, freeze_backbone=True)`` calls :func:`prepare_frozen_data`
and trains on its datasets; the result is an ordinary ``RETDM`` that predicts on raw images.
``fit_stages`` does so by default for a pretrained backbone, unless the features would take
more than a quarter of the machine's memory (:func:`frozen_features_fit`): then it
fine-tunes, with a warning.

Example:

>>> import numpy as np, tensorflow as tf
>>> from retdm_keras import RETDM
>>> rng = np.random.default_rng(0)
>>> x = {"images": rng.random((8, 32, 32, 3)).astype("float32") * 255, "index": np.arange(8)}
>>> y = np.eye(4, dtype="float32")[np.arange(8) % 4]
>>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
>>> model = RETDM(4, backbone="tiny_cnn", image_size=32, embed_dim=8)
>>> views, labels = extract_features(model, ds, views=2, verbose=0)
>>> views.shape, labels.shape
((8, 2, 32), (8, 4))
"""

from retdm_keras.frozen_features.cache import (
    CACHE_VERSION,
    FeatureCache,
    FeatureCacheWarning,
    backbone_fingerprint,
    cached_features,
    data_fingerprint,
    default_cache_dir,
)
from retdm_keras.frozen_features.datasets import (
    DEFAULT_VIEWS,
    FrozenData,
    feature_dataset,
    prepare_frozen_data,
)
from retdm_keras.frozen_features.extraction import extract_features
from retdm_keras.frozen_features.memory import (
    frozen_feature_bytes,
    frozen_features_fit,
    physical_memory,
)

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_VIEWS",
    "FeatureCache",
    "FeatureCacheWarning",
    "FrozenData",
    "backbone_fingerprint",
    "cached_features",
    "data_fingerprint",
    "default_cache_dir",
    "extract_features",
    "feature_dataset",
    "frozen_feature_bytes",
    "frozen_features_fit",
    "physical_memory",
    "prepare_frozen_data",
]
