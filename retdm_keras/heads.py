"""The two heads of RETDM.

* ``ClassificationHead``: Dense on the image embedding ``u = f(x)``; a sigmoid of its output
  gives the label probabilities used for prediction (trained with BCE).
* ``ReconstructionHead``: Dense on the label embedding ``v = g(y)`` back to the label vector
  (trained with MSE); a regulariser that keeps ``g`` from collapsing label sets together.
"""

from __future__ import annotations

import keras
from keras import layers, ops


class _LabelVectorHead(layers.Layer):
    """A Dense layer from an embedding to the ``C``-dimensional label space."""

    dense_name = "dense"

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.dense = layers.Dense(self.num_labels, name=self.dense_name)

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_labels)

    def get_config(self):
        config = super().get_config()
        config.update(num_labels=self.num_labels)
        return config


@keras.saving.register_keras_serializable(package="retdm_keras")
class ClassificationHead(_LabelVectorHead):
    """Dense + sigmoid on the image embedding.

    ``call`` returns probabilities; ``logits`` returns the pre-sigmoid values, which the
    training step uses for a numerically stable binary cross-entropy.

    Args:
        num_labels: number of labels ``C``.

    Example:

    >>> import numpy as np
    >>> head = ClassificationHead(3)
    >>> p = head(np.zeros((2, 8), "float32"))
    >>> tuple(p.shape), float(p.numpy().min()) >= 0.0
    ((2, 3), True)
    """

    dense_name = "logits"

    def logits(self, u):
        """Pre-sigmoid scores ``(B, C)``."""
        return self.dense(u)

    def call(self, u):
        return ops.sigmoid(self.dense(u))


@keras.saving.register_keras_serializable(package="retdm_keras")
class ReconstructionHead(_LabelVectorHead):
    """Dense from the label embedding back to the ``C``-dimensional label vector.

    Args:
        num_labels: number of labels ``C``.

    Example:

    >>> import numpy as np
    >>> tuple(ReconstructionHead(5)(np.zeros((2, 8), "float32")).shape)
    (2, 5)
    """

    dense_name = "reconstruction"

    def call(self, v):
        return self.dense(v)
