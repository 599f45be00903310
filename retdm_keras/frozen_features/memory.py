"""Whether the frozen-backbone features of a training set fit in this machine's memory.

Frozen training holds every view of every training image in host memory, ``(N, V, D)``
float32, plus the plain view ``(N, D)``; extraction briefly holds them twice (the batches
and the stacked array). Fine-tuning streams the images instead. ``fit_stages`` trains a
pretrained backbone frozen by default, so on a data set whose features would not fit it
fine-tunes instead, with a warning (an explicit ``freeze_backbone=True`` is obeyed).
"""

from __future__ import annotations

import os

import tensorflow as tf

from retdm_keras.model import RETDM
from retdm_keras.training_set import declared_batch_size

MEMORY_SHARE = 0.25
"""The share of physical memory the features may take (extraction peaks at twice that)."""


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say (Windows)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def frozen_feature_bytes(model: RETDM, train_data: tf.data.Dataset, views: int) -> int | None:
    """Bytes of the ``views`` training views and the plain view of ``train_data`` (float32
    pooled backbone features), or None when its size is not known (not a
    ``tf.data.Dataset``, an infinite or unbatched one, or one of unknown cardinality). The
    last batch counts as full."""
    if not isinstance(train_data, tf.data.Dataset):
        return None
    batches = int(train_data.cardinality())
    batch_size = declared_batch_size(train_data)
    if batches < 0 or batch_size is None:
        return None
    dim = int(model.image_embedder.backbone.output.shape[-1])
    return batches * batch_size * (views + 1) * dim * 4


def frozen_features_fit(
    model: RETDM, train_data: tf.data.Dataset, views: int, memory: int | None = None
) -> bool:
    """False when the frozen features of ``train_data`` are known to need more than
    :data:`MEMORY_SHARE` of ``memory`` (default: :func:`physical_memory`); True otherwise,
    including when either size is unknown."""
    need = frozen_feature_bytes(model, train_data, views)
    memory = physical_memory() if memory is None else memory
    return need is None or memory is None or need <= MEMORY_SHARE * memory
