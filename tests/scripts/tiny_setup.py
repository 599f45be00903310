"""The tiny model and data shared by the distributed-training scripts.

One image per label set, so the neighbour image drawn for each set is deterministic and a
distributed step can be compared exactly with a single-device step.
"""

import keras
import numpy as np
import tensorflow as tf

from retdm_keras import RETDM

NUM_LABELS, SIZE, N = 4, 16, 12


def distinct_label_data(batch_size: int) -> tf.data.Dataset:
    """12 random images, each with its own label set, batched by the *global* batch size."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (N, SIZE, SIZE, 3)).astype("float32")
    codes = rng.permutation(2**NUM_LABELS - 1)[:N] + 1
    labels = ((codes[:, None] >> np.arange(NUM_LABELS)) & 1).astype("float32")
    x = {"images": images, "index": np.arange(N)}
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(batch_size)


def tiny_model(**kwargs) -> RETDM:
    """A seeded tiny_cnn RETDM (build it inside the strategy's scope)."""
    keras.utils.set_random_seed(0)
    config = dict(
        backbone="tiny_cnn", image_size=SIZE, embed_dim=8, label_hidden_units=16, num_neighbors=3
    )
    config.update(kwargs)
    return RETDM(NUM_LABELS, **config)
