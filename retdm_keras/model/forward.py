"""The forward pass: a batch's inputs, ``u = f(x)``, and label probabilities from it."""

from __future__ import annotations

import warnings

import numpy as np
from keras import ops

from retdm_keras.label_set_scores import label_set_scores

# Keys of an input dict that hold what f embeds: raw images, feature vectors ("mlp"), or
# pooled backbone features (frozen-backbone training, see retdm_keras.frozen_features).
INPUT_KEYS = ("images", "features", "backbone_features")
BACKBONE_FEATURES = "backbone_features"


class ForwardPassMixin:
    """``RETDM``'s inputs, embeddings and predictions."""

    #: Set by ``load_weights`` when the model has no training label sets and was not made
    #: from a config; the first prediction then warns that the label-set retrieval mix is
    #: missing (cleared when ``label_sets`` is set).
    weights_loaded_without_label_sets: bool = False
    #: True for a model made by ``from_config`` (a ``.keras`` file, a zoo entry): its config
    #: records its label sets, none included, so weights loaded into it do not warn.
    label_sets_from_config: bool = False

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _split_inputs(x):
        """``(kind, tensor, index or None)`` of a batch; ``kind`` is one of ``INPUT_KEYS``."""
        if isinstance(x, dict):
            for key in INPUT_KEYS:
                if key in x:
                    return key, x[key], x.get("index")
            raise ValueError(
                "an input dict needs an 'images', 'features' or 'backbone_features' entry, "
                f"got keys {sorted(x)}"
            )
        return "images", x, None

    @classmethod
    def _inputs_of(cls, x):
        """The image/feature tensor and the sample index (or None) of a batch."""
        _, tensor, index = cls._split_inputs(x)
        return tensor, index

    def _embed(self, kind: str, tensor, training):
        """``u = f(x)``; pooled backbone features (``kind="backbone_features"``) skip the
        backbone."""
        if kind == BACKBONE_FEATURES:
            return self.image_embedder.embed_backbone_features(tensor, training=training)
        return self.image_embedder(tensor, training=training)

    def _embed_for_losses(self, kind: str, tensor, training):
        """``(u, u for the metric loss)``: equal values; the second carries only
        ``backbone_metric_weight`` of its gradient into a trainable backbone."""
        scale = self._backbone_metric_scale(kind, training)
        if scale is None:
            u = self._embed(kind, tensor, training)
            return u, u
        return self.image_embedder.embed_scaling_backbone_gradient(tensor, scale, training)

    def _embed_for_metric(self, kind: str, tensor, training):
        """The second half of :meth:`_embed_for_losses` alone (neighbour images, whose
        classifier embedding is not needed): one projection, not two."""
        scale = self._backbone_metric_scale(kind, training)
        if scale is None:
            return self._embed(kind, tensor, training)
        return self.image_embedder.embed_with_scaled_backbone_gradient(tensor, scale, training)

    def _backbone_metric_scale(self, kind: str, training) -> float | None:
        """``backbone_metric_weight`` where the metric loss's gradient reaches a trainable
        backbone, else None: no backbone in the graph, the full share, evaluation, no metric
        term to train (the classifier stage, λ = 0), or a frozen backbone."""
        scale = self.backbone_metric_weight
        if (
            kind == BACKBONE_FEATURES  # no backbone in the graph (frozen-backbone training)
            or scale == 1.0
            or not training
            or not self.loss_config.metric_trains_in(self.stage)
            or not self.image_embedder.backbone.trainable
        ):
            return None
        return scale

    # ------------------------------------------------------------------ forward pass
    def call(self, inputs, training=None):
        kind, x, _ = self._split_inputs(inputs)
        kind, x, baseline_x = self._with_baseline_input(kind, x, training)
        probabilities = self.probabilities_from_embedding(self._embed(kind, x, training))
        return self.blended_with_baseline(probabilities, baseline_x)

    def probabilities_from_embedding(self, u):
        """Label probabilities ``(B, C)`` (float32) from image embeddings ``u = f(x)``.

        The classification head's sigmoid, mixed — when ``label_set_weight = w > 0``, the
        metric is trained (λ > 0) and the training label sets are known — with retrieval
        scores in the metric space
        (``retdm_keras.label_set_scores``): ``(1 - w) · sigmoid(head(u)) + w · q(u)``.
        """
        if self.weights_loaded_without_label_sets:  # cleared when label_sets is set
            self.weights_loaded_without_label_sets = False  # once
            if self.label_set_weight > 0 and self.loss_config.metric_trains:
                warnings.warn(
                    "this model's weights were loaded without its training label sets, so it "
                    "predicts with the classification head alone, not mixed with label-set "
                    f"retrieval (label_set_weight={self.label_set_weight}). Label sets are "
                    "configuration, not weights: load the .keras file, or set "
                    "model.label_sets, or call model.prepare_training(train_data) first.",
                    stacklevel=2,
                )
        # float32 probabilities also under a mixed-precision policy
        return self.mixed_with_label_sets(ops.cast(self.classification_head(u), "float32"), u)

    def mixed_with_label_sets(self, probabilities, u):
        """The classifier's float32 ``probabilities`` for embeddings ``u``, mixed with the
        label-set retrieval scores as :meth:`probabilities_from_embedding` describes (returned
        as they are when the mix does not apply)."""
        if (
            self.label_set_weight == 0.0
            or not self.loss_config.metric_trains
            or len(self.label_sets or ()) < 2
        ):
            # λ = 0, or a single training label set (no neighbour sets, the metric loss was
            # masked): the metric space was never trained
            return probabilities
        sets = ops.convert_to_tensor(self._label_set_matrix)
        set_embeddings = self._metric_space(ops.cast(self.label_embedder(sets), "float32"))
        scores = label_set_scores(
            self._metric_space(ops.cast(u, "float32")),
            set_embeddings,
            sets,
            temperature=self.label_set_temperature,
            distance=self.distance,
        )
        w = self.label_set_weight
        return (1.0 - w) * probabilities + w * scores

    def embed_images(self, inputs, training: bool = False):
        """``u = f(x)`` for a batch (array, tensor, or input dict)."""
        kind, x, _ = self._split_inputs(inputs)
        return self._embed(kind, x, training)

    @property
    def label_sets(self) -> list[list[int]] | None:
        """The distinct training label sets (label indices each), or None; saved in the
        config, used by ``probabilities_from_embedding``."""
        return self._label_sets

    @label_sets.setter
    def label_sets(self, value) -> None:
        self.weights_loaded_without_label_sets = False
        if value is None:
            self._label_sets, self._label_set_matrix = None, None
            return
        self._label_sets = [sorted(map(int, s)) for s in value]
        matrix = np.zeros((len(self._label_sets), self.num_labels), np.float32)
        for row, labels in enumerate(self._label_sets):
            matrix[row, labels] = 1.0
        self._label_set_matrix = matrix  # multi-hot, built once, not at every prediction

    def backbone_features(self, images, training: bool = False):
        """Pooled backbone features ``(B, D)`` of raw images (or an input dict): ``f`` up to,
        but excluding, its dropout and projection (``ImageEmbedder.backbone_features``)."""
        x, _ = self._inputs_of(images)
        return self.image_embedder.backbone_features(x, training=training)

    def embed_labels(self, labels):
        """``v = g(y)`` for multi-hot labels ``(B, C)``."""
        return self.label_embedder(labels)

    @property
    def decision_threshold(self) -> float | list[float]:
        """The stored ``thresholds`` (one value or one per label), else 0.5."""
        return 0.5 if self.thresholds is None else self.thresholds

    def predict_labels(self, x, threshold=None, **predict_kwargs) -> list[list[str]]:
        """Names (or indices, without ``label_names``) of the predicted labels of each image.

        A label is predicted when its probability is ``>= threshold``. Without ``threshold``,
        a model with ``top_k`` predicts the ``top_k`` most probable labels of each image (ties
        go to the lower label index); otherwise the stored ``thresholds`` apply, else 0.5.
        Each image's labels are listed in label order.
        """
        probabilities = self.predict(x, **{"verbose": 0, **predict_kwargs})
        if threshold is None and self.top_k:
            order = np.argsort(-probabilities, axis=1, kind="stable")[:, : self.top_k]
            chosen = np.zeros(probabilities.shape, dtype=bool)
            np.put_along_axis(chosen, order, True, axis=1)
        else:
            if threshold is None:
                threshold = self.decision_threshold
            chosen = probabilities >= np.asarray(threshold, dtype=probabilities.dtype)
        names = self.label_names or list(range(self.num_labels))
        return [[names[j] for j in np.flatnonzero(row)] for row in chosen]
