"""``LabelEmbedder`` (``g``): multi-hot label vector → embedding, two Dense layers."""

from __future__ import annotations

import keras
from keras import layers, ops

_PACKAGE = "retdm_keras"
# Standard deviation of the label embedder's initial output bias (see LabelEmbedder).
BIAS_STDDEV = 0.01


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LabelEmbedder(layers.Layer):
    """``g``: multi-hot label vector → ``embed_dim`` embedding (Dense, tanh, Dense).

    Args:
        embed_dim: size of the output embedding (shared with the image embedder).
        hidden_units: units of the first Dense layer (the paper: 512).
        hidden_activation: activation of the first layer (default ``"tanh"``; files saved
            before this option load with the ``"relu"`` they were trained with).

    Example:

    >>> import numpy as np
    >>> g = LabelEmbedder(embed_dim=8)
    >>> tuple(g(np.eye(3, dtype="float32")).shape)
    (3, 8)
    """

    # the public path, as before the package split: saved files name it ("module")
    __module__ = "retdm_keras.embedders"

    def __init__(
        self,
        embed_dim: int = 512,
        hidden_units: int = 512,
        hidden_activation: str = "tanh",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embed_dim = int(embed_dim)
        self.hidden_units = int(hidden_units)
        self.hidden_activation = hidden_activation
        # tanh (ours): zero-mean hidden units, so label sets that share no label start
        # near-orthogonal; ReLU's positive mean gives every pair a common part (cosine ≈ 0.38
        # between disjoint sets, 0.52 on average over the sets of 1-3 of 6 labels).
        self.hidden = layers.Dense(self.hidden_units, activation=hidden_activation, name="hidden")
        # A small random output bias: with zero biases g(empty label set) is exactly 0, and
        # normalising that for the metric loss has no direction (gradients of ~1/eps, NaN).
        # Its norm (≈ 0.01·sqrt(embed_dim), 0.23 at 512) stays well below that of the
        # label-dependent part (≈ 1 per label), so different label sets start apart: a bias
        # of N(0, 0.5) (norm 11) made every pair of label sets start at cosine 0.99.
        self.output_layer = layers.Dense(
            self.embed_dim,
            bias_initializer=keras.initializers.RandomNormal(stddev=BIAS_STDDEV),
            name="output",
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.output_layer.build((*input_shape[:-1], self.hidden_units))
        self.built = True

    def call(self, labels):
        return self.output_layer(self.hidden(ops.cast(labels, self.compute_dtype)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            embed_dim=self.embed_dim,
            hidden_units=self.hidden_units,
            hidden_activation=self.hidden_activation,
        )
        return config

    @classmethod
    def from_config(cls, config):
        # saved before hidden_activation existed: those label embedders used ReLU
        return cls(**{"hidden_activation": "relu", **config})
