"""Pascal VOC as a multi-label image set, from tensorflow-datasets ``voc/2007`` examples.

Each VOC object has a class and an ``is_difficult`` flag (hard to recognise: tiny, heavily
occluded). The classification challenge treats an image whose only instances of class ``c``
are difficult as *neither* positive nor negative for ``c``; for training a multi-label model
the usual choice is to ignore such objects, i.e. not to let them switch a label on. That is
``include_difficult=False`` (the default); ``True`` counts every object.

The split of the literature: train on ``trainval`` (tfds ``train+validation``), test on
``test``. ``retdm_keras.datasets.voc_2007`` builds whole pipelines with :func:`voc_multi_hot`::

    from retdm_keras.datasets import voc_2007
    train_ds, n = voc_2007("train+validation", image_size=224, training=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

__all__ = ["VOC_CLASSES", "voc_multi_hot"]

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
"""The 20 VOC classes in tfds ``ClassLabel`` order."""


def voc_multi_hot(
    example: Mapping[str, Any],
    *,
    include_difficult: bool = False,
    num_classes: int = len(VOC_CLASSES),
) -> tf.Tensor:
    """The ``(20,)`` float32 multi-hot vector of one tfds ``voc`` example.

    Args:
        example: a tfds ``voc`` example, or any dict with ``objects/label`` and
            ``objects/is_difficult`` (numpy arrays, lists or tensors).
        include_difficult: let difficult objects switch their label on (default: ignore
            them, so a class seen only in difficult objects stays 0).
        num_classes: label count.

    >>> example = {"objects": {"label": [14, 8, 8], "is_difficult": [False, True, False]}}
    >>> voc_multi_hot(example).numpy()[[8, 14]]
    array([1., 1.], dtype=float32)
    """
    objects = example["objects"]
    labels = tf.reshape(tf.cast(objects["label"], tf.int32), (-1,))
    weight = tf.ones_like(labels, dtype=tf.float32)
    if not include_difficult:
        difficult = tf.reshape(tf.cast(objects["is_difficult"], tf.bool), (-1,))
        weight = tf.where(difficult, 0.0, weight)
    onehot = tf.one_hot(labels, num_classes, dtype=tf.float32) * weight[:, None]
    return tf.minimum(tf.reduce_sum(onehot, axis=0), 1.0)
