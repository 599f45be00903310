"""The tuned baseline inside the model: what ``baseline_head`` reads, its mix into the
predictions, and :meth:`set_baseline`.

``baseline_head`` is per-label logistic regression on the pooled backbone features (the input
features for ``"mlp"``), fitted in closed form by ``retdm_keras.baseline_blend``; predictions
are ``(1 - β) · p_RETDM + β · p_baseline`` with ``β = baseline_weight``.
"""

from __future__ import annotations

import numpy as np

from retdm_keras.heads import BaselineHead
from retdm_keras.model.arguments import unit_interval
from retdm_keras.model.forward import BACKBONE_FEATURES


class BaselineMixin:
    """``RETDM``'s baseline head: its inputs, the blend and ``set_baseline``."""

    @property
    def baseline_input_dim(self) -> int:
        """Size of what ``baseline_head`` reads: the pooled backbone features ``D`` for
        images, the input features ``F`` for ``"mlp"``."""
        if self.backbone == "mlp":
            return int(self.image_embedder.input_dim)
        return self.image_embedder.feature_dim

    def set_baseline(self, weight: float, coef=None, intercept=None, mean=None, scale=None):
        """Mix a per-label logistic regression into the predictions with weight ``β``.

        Args:
            weight: ``β`` in ``[0, 1]``; 0 predicts without the baseline (an existing head
                stays, unused).
            coef: ``(baseline_input_dim, C)`` coefficients on ``(x - mean) / scale``.
            intercept: ``(C,)`` intercepts.
            mean, scale: the feature scaling the coefficients were fitted with (default
                none).
        """
        weight = unit_interval("baseline weight", float(weight))
        if coef is None or intercept is None:
            if weight > 0 and self.baseline_head is None:
                raise ValueError("a model without a baseline head needs coef and intercept")
        else:
            expected = (self.baseline_input_dim, self.num_labels)
            if tuple(np.shape(coef)) != expected:
                raise ValueError(f"coef must have shape {expected}, got {np.shape(coef)}")
            if self.baseline_head is None:
                with self.distribute_strategy.scope():
                    head = BaselineHead(self.num_labels, name="baseline_head")
                    head.build((None, self.baseline_input_dim))
                # Keras locks a built layer's state; adding a sublayer afterwards is what
                # Keras' own Dense.enable_lora does: unlock, add, lock.
                self._tracker.unlock()
                try:
                    self.baseline_head = head
                finally:
                    self._tracker.lock()
            self.baseline_head.assign(coef, intercept, mean, scale)
        self.baseline_weight = weight

    def _with_baseline_input(self, kind: str, tensor, training):
        """``(kind, tensor, what baseline_head reads or None)``: with a baseline head, raw
        images become their pooled backbone features first (one backbone pass serves the
        embedder and the baseline)."""
        if self.baseline_head is None or self.baseline_weight == 0.0:
            return kind, tensor, None
        kind, tensor = self._baseline_view(kind, tensor, training)
        return kind, tensor, tensor

    def _baseline_view(self, kind: str, tensor, training):
        """``(kind, tensor)`` with raw images replaced by their pooled backbone features
        (``"backbone_features"``); feature vectors and pooled features as they are."""
        if kind == "images" and self.backbone != "mlp":
            tensor = self.image_embedder.backbone_features(tensor, training=training)
            kind = BACKBONE_FEATURES
        return kind, tensor

    def baseline_inputs(self, inputs, training: bool = False):
        """What ``baseline_head`` reads for a batch (array, tensor or input dict): the pooled
        backbone features of raw images, the input vectors of ``"mlp"``, a
        ``"backbone_features"`` batch as it is."""
        kind, x, _ = self._split_inputs(inputs)
        return self._baseline_view(kind, x, training)[1]

    def blended_with_baseline(self, probabilities, baseline_x):
        """``(1 - β) · probabilities + β · baseline_head(baseline_x)`` for
        ``β = baseline_weight`` (``probabilities`` as they are without a baseline)."""
        if baseline_x is None:
            return probabilities
        beta = self.baseline_weight
        return (1.0 - beta) * probabilities + beta * self.baseline_head(baseline_x)
