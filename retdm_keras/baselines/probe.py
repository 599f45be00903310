"""The linear probe: per-label logistic regression on (standardised) features — one Dense
layer with a sigmoid, BCE, L2 weight decay, trained with Adam.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from retdm_keras.baselines.c2ae import standardiser


def linear_probe(
    input_dim: int,
    num_labels: int,
    *,
    l2: float = 1e-3,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> keras.Model:
    """Per-label logistic regression: [standardise] → Dense(C, sigmoid) with L2 on the kernel."""
    inputs = keras.Input((int(input_dim),))
    x = inputs
    if mean is not None and std is not None:
        x = layers.Normalization(mean=mean, variance=np.square(std))(x)
    outputs = layers.Dense(
        num_labels, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(l2)
    )(x)
    return keras.Model(inputs, outputs, name="linear_probe")


def fit_linear_probe(
    features,
    labels,
    *,
    l2: float = 1e-3,
    epochs: int = 100,
    batch_size: int = 256,
    learning_rate: float = 1e-2,
    seed: int = 0,
    verbose: int = 0,
) -> keras.Model:
    """Train ``linear_probe`` on ``(features, labels)`` with BCE and Adam; returns the model.

    The ``epochs`` passes (each reshuffled, in batches of ``batch_size``) run as one Keras
    epoch over a repeated ``tf.data`` pipeline: the same updates as ``epochs`` calls' worth
    of epochs, without Keras's per-epoch overhead.

    Args:
        features: ``(N, F)`` feature vectors (standardised inside the model).
        labels: ``(N, C)`` multi-hot labels.
        l2: L2 penalty on the kernel (default 1e-3).
        epochs: passes over the data (default 100).
        batch_size: samples per step (default 256).
        learning_rate: Adam's learning rate (default 1e-2).
        seed: seed of the initialisation and the shuffling.
        verbose: Keras verbosity of the single ``fit`` call.

    Returns:
        The trained :func:`linear_probe` model, which takes raw features.
    """
    import tensorflow as tf

    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.float32)
    keras.utils.set_random_seed(seed)
    mean, std = standardiser(features)
    model = linear_probe(features.shape[1], labels.shape[1], l2=l2, mean=mean, std=std)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    passes = (
        tf.data.Dataset.from_tensor_slices((features, labels))
        .shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat(epochs)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(passes, epochs=1, shuffle=False, verbose=verbose)  # the pipeline shuffles
    return model
