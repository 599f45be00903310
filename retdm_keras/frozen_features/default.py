"""Whether ``fit_stages`` trains a backbone frozen when it is not told: frozen when the
backbone is pretrained (``docs/method.md``, "Frozen by default") and its features fit in
memory."""

from __future__ import annotations

import warnings

import tensorflow as tf

from retdm_keras.frozen_features import memory
from retdm_keras.model import RETDM


def default_freeze_backbone(model: RETDM) -> bool:
    """What ``fit_stages(freeze_backbone=None)`` does: train frozen when ``model``'s image
    backbone starts from trained weights (``model.image_embedder.pretrained``: ImageNet, a
    weights file, a saved model), fine-tune when it starts from random weights; never for
    feature vectors (``"mlp"``), which have no backbone to freeze.

    Pass ``freeze_backbone=False`` to fine-tune. Why frozen is the default (ours): see
    ``docs/method.md``, "Frozen by default".
    """
    return bool(model.image_embedder.pretrained)  # always False for "mlp" (ImageEmbedder)


def resolve_freeze_backbone(
    model: RETDM,
    train_data: tf.data.Dataset,
    freeze_backbone: bool | None = None,
    feature_views: int = 4,
) -> bool:
    """``fit_stages``' ``freeze_backbone`` as it will train: an explicit value as given;
    None is :func:`default_freeze_backbone`, except that training data other than a
    ``tf.data.Dataset`` fine-tune as before, and a training set whose frozen
    features (``feature_views`` + 1 views of float32 pooled features per image) would take
    more than a quarter of this machine's memory fine-tunes instead, with a warning
    (``retdm_keras.frozen_features.memory``)."""
    if freeze_backbone is not None:
        return bool(freeze_backbone)
    if not default_freeze_backbone(model) or not isinstance(train_data, tf.data.Dataset):
        return False  # frozen extraction reads a tf.data pipeline; other inputs fine-tune
    have = memory.physical_memory()
    if memory.frozen_features_fit(model, train_data, feature_views, memory=have):
        return True
    need = memory.frozen_feature_bytes(model, train_data, feature_views)
    warnings.warn(
        f"fine-tuning the pretrained backbone instead of freezing it (the default): the "
        f"frozen features of this training set, {feature_views} views and the plain one, "
        f"would take {need / 2**30:.1f} GiB of {have / 2**30:.1f} GiB of memory. Pass "
        "freeze_backbone=True (fewer feature_views) to freeze it anyway, or "
        "freeze_backbone=False to silence this",
        UserWarning,
        stacklevel=3,
    )
    return False
