"""The two heads of RETDM.

* ``ClassificationHead``: Dense on the image embedding ``u = f(x)``; a sigmoid of its output
  gives the label probabilities used for prediction (trained with BCE).
* ``ReconstructionHead``: Dense on the label embedding ``v = g(y)`` back to the label vector
  (trained with MSE); a regulariser that keeps ``g`` from collapsing label sets together.
* ``BaselineHead``: the tuned baseline inside the model, per-label logistic regression on the
  pooled backbone features (the input features for ``"mlp"``); fitted in closed form by
  ``retdm_keras.baseline_blend``, never by gradient descent.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


class _LabelVectorHead(layers.Layer):
    """A Dense layer from an embedding to the ``C``-dimensional label space."""

    dense_name = "dense"

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.dense = layers.Dense(self.num_labels, dtype=self.dtype_policy, name=self.dense_name)

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


@keras.saving.register_keras_serializable(package="retdm_keras")
class BaselineHead(_LabelVectorHead):
    """Per-label logistic regression on the features ``RETDM``'s embedder starts from.

    The weights are not trained by ``fit``: :meth:`assign` sets them from a fitted
    :class:`retdm_keras.baselines.BinaryRelevanceLR` (its feature scaling folded into the
    kernel), and ``RETDM(baseline_weight=β)`` predicts
    ``(1 - β) · p_RETDM + β · sigmoid(head(h))``. See ``retdm_keras.baseline_blend``.

    Args:
        num_labels: number of labels ``C``.

    Example:

    >>> import numpy as np
    >>> head = BaselineHead(2)
    >>> head.build((None, 3))
    >>> head.assign(coef=np.ones((3, 2)), intercept=np.zeros(2),
    ...             mean=np.zeros(3), scale=np.full(3, 2.0))
    >>> np.round(head.logits(np.ones((1, 3), "float32")).numpy(), 2).tolist()
    [[1.5, 1.5]]
    """

    dense_name = "logits"

    def __init__(self, num_labels: int, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "float32")  # float32 under mixed precision too
        super().__init__(num_labels, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        # now that the variables exist (the head's own flag is already False, and Keras
        # skips assigning an unchanged flag): they are never trained
        self.dense.trainable = False

    def assign(self, coef, intercept, mean=None, scale=None) -> None:
        """Set the weights to logistic-regression coefficients ``(F, C)`` and intercepts
        ``(C,)`` fitted on ``(x - mean) / scale`` (``mean`` 0 and ``scale`` 1 by default)."""
        coef = np.asarray(coef, np.float64)
        intercept = np.asarray(intercept, np.float64)
        features = coef.shape[0]
        mean = np.zeros(features) if mean is None else np.asarray(mean, np.float64)
        scale = np.ones(features) if scale is None else np.asarray(scale, np.float64)
        kernel = coef / scale[:, None]
        bias = intercept - mean @ kernel
        self.dense.kernel.assign(kernel.astype("float32"))
        self.dense.bias.assign(bias.astype("float32"))

    def logits(self, x):
        """Pre-sigmoid scores ``(B, C)``, in float32."""
        return self.dense(ops.cast(x, "float32"))

    def call(self, x):
        return ops.sigmoid(self.logits(x))
