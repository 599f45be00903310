"""Whether a run trains the backbone frozen: the training policy's one decision.

Frozen when the image backbone starts from trained weights (``docs/method.md``, "Frozen by
default") and its features fit in memory; fine-tuned from random weights, for feature
vectors (``"mlp"``, no backbone) and on several machines (``fit_stages_multiworker`` has no
frozen path). Every caller asks :func:`resolve_freeze_backbone` once per run and passes the
answer down: ``fit_stages(freeze_backbone=None)`` for a Python user, ``retdm-keras train``
once its model is built, ``train_recipe`` for a recipe. Before a model exists (the command
line's option checks), :func:`frozen_by_default` answers the same rule from what the options
say.
"""

from __future__ import annotations

import warnings

import tensorflow as tf

from retdm_keras.frozen_features import memory
from retdm_keras.model import RETDM

__all__ = ["default_freeze_backbone", "frozen_by_default", "resolve_freeze_backbone"]


def frozen_by_default(pretrained: bool, *, multiworker: bool = False) -> bool:
    """The rule: frozen when the backbone starts from trained weights (``pretrained``),
    except on several machines (``multiworker``), where training fine-tunes."""
    return bool(pretrained) and not multiworker


def default_freeze_backbone(model: RETDM, *, multiworker: bool = False) -> bool:
    """What ``fit_stages(freeze_backbone=None)`` does: train frozen when ``model``'s image
    backbone starts from trained weights (``model.image_embedder.pretrained``: ImageNet, a
    weights file, a saved model), fine-tune when it starts from random weights; never for
    feature vectors (``"mlp"``), which have no backbone to freeze, nor with ``multiworker``
    (:func:`frozen_by_default`).

    Pass ``freeze_backbone=False`` to fine-tune. Why frozen is the default (ours): see
    ``docs/method.md``, "Frozen by default".
    """
    # model.image_embedder.pretrained is always False for "mlp" (ImageEmbedder)
    return frozen_by_default(model.image_embedder.pretrained, multiworker=multiworker)


def resolve_freeze_backbone(
    model: RETDM,
    train_data: tf.data.Dataset,
    freeze_backbone: bool | None = None,
    feature_views: int = 4,
    *,
    multiworker: bool = False,
) -> bool:
    """``fit_stages``' ``freeze_backbone`` as it will train: an explicit value as given;
    None is :func:`default_freeze_backbone`, except that training data other than a
    ``tf.data.Dataset`` fine-tune as before, and a training set whose frozen
    features (``feature_views`` + 1 views of float32 pooled features per image) would take
    more than a quarter of this machine's memory fine-tunes instead, with a warning
    (``retdm_keras.frozen_features.memory``). ``multiworker``: the run trains on several
    machines, where None fine-tunes."""
    if freeze_backbone is not None:
        return bool(freeze_backbone)
    if not default_freeze_backbone(model, multiworker=multiworker) or not isinstance(
        train_data, tf.data.Dataset
    ):
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
