"""``SDL``: an image model whose labels are word vectors, trained with the SDL loss.

See :mod:`retdm_keras.zero_shot` for the equations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from retdm_keras.embedders import ImageEmbedder
from retdm_keras.zero_shot.head import (
    SDLHead,
    combine_sdl_terms,
    label_scores,
    masked_mean,
    sdl_loss_terms,
)
from retdm_keras.zero_shot.label_vectors import normalize_rows

IDENTITY = "identity"


@keras.saving.register_keras_serializable(package="retdm_keras")
class SDL(keras.Model):
    """Zero-shot multi-label classifier: features ``φ(x)`` → ``SDLHead`` → one score per label.

    The training (seen) label vectors are stored in the model as a non-trainable variable;
    ``predict``/``call`` score them, ``score(x, label_vectors)`` scores any label set (seen,
    unseen or both). ``fit`` trains with the SDL loss on multi-hot labels over the stored labels.

    Args:
        label_vectors: ``(L, d)`` word vectors of the training labels (L2-normalised here).
            May be omitted when ``num_labels`` and ``word_dim`` are given (the vectors are then
            zeros until weights are loaded — this is how a saved model is rebuilt).
        num_labels, word_dim: ``L`` and ``d`` without ``label_vectors``.
        backbone: ``"identity"`` (inputs are precomputed feature vectors of size ``input_dim``
            and go straight to the head — the official SDL formulation on frozen features), or
            any ``ImageEmbedder.BACKBONES`` name; then ``φ(x)`` is the RETDM image embedder's
            output (backbone, pooling, dropout, linear projection to ``embed_dim``).
        image_size, embed_dim, weights, backbone_width: passed to ``ImageEmbedder``.
        input_dim, hidden_units, dropout, freeze_batchnorm: passed to ``ImageEmbedder``
            (``input_dim`` is also the feature size for ``"identity"``).
        num_vectors: ``M``, principal vectors per image (the paper: 7).
        lam: ``λ`` of the variance regulariser (the paper: 0.3); ``None`` turns it off.
        label_names: optional names of the ``L`` training labels.

    Inputs are raw images (float pixels in ``[0, 255]``), feature vectors (``"identity"`` /
    ``"mlp"``), or a dict ``{"images" | "features": ..., "index": ...}`` as made by
    ``retdm_keras.data`` (``index`` is ignored).

    Example — train on 3 labels, score 5:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> words = rng.normal(size=(5, 8)).astype("float32")
    >>> model = SDL(words[:3], backbone="identity", input_dim=6, num_vectors=2)
    >>> model.compile(optimizer="adam")
    >>> x = rng.normal(size=(4, 6)).astype("float32")
    >>> y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    >>> sorted(model.fit(x, y, epochs=1, verbose=0).history)
    ['loss', 'rank_loss', 'reg_loss']
    >>> model.predict(x, verbose=0).shape, model.score(x, words).shape
    ((4, 3), (4, 5))
    """

    BACKBONES = (*ImageEmbedder.BACKBONES, IDENTITY)

    def __init__(
        self,
        label_vectors=None,
        *,
        num_labels: int | None = None,
        word_dim: int | None = None,
        backbone: str = "mobilenet_v2",
        image_size: int | tuple[int, int] = 224,
        embed_dim: int = 512,
        num_vectors: int = 7,
        lam: float | None = 0.3,
        weights: str | None = None,
        backbone_width: float | None = None,
        input_dim: int | None = None,
        hidden_units: Sequence[int] = (512,),
        dropout: float = 0.0,
        freeze_batchnorm: bool | None = None,
        label_names: Sequence[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if backbone not in self.BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {self.BACKBONES}")
        vectors = None
        if label_vectors is not None:
            vectors = normalize_rows(label_vectors, "label_vectors")
            for given, actual, what in (
                (num_labels, vectors.shape[0], "num_labels"),
                (word_dim, vectors.shape[1], "word_dim"),
            ):
                if given is not None and int(given) != actual:
                    raise ValueError(f"{what}={given} but label_vectors has {actual}")
            num_labels, word_dim = vectors.shape
        elif num_labels is None or word_dim is None:
            raise ValueError("pass label_vectors, or both num_labels and word_dim")
        if label_names is not None and len(label_names) != int(num_labels):
            raise ValueError(f"label_names has {len(label_names)} names for {num_labels} labels")
        if lam is not None and not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"lam must be in [0, 1] or None, got {lam}")
        # === config ===
        self.num_labels = int(num_labels)
        self.word_dim = int(word_dim)
        self.num_vectors = int(num_vectors)
        self.lam = None if lam is None else float(lam)
        self.label_names = None if label_names is None else [str(n) for n in label_names]
        self.backbone_name = backbone
        self.input_dim = None if input_dim is None else int(input_dim)

        # === layers and state ===
        if backbone == IDENTITY:
            if not self.input_dim:
                raise ValueError("the 'identity' backbone needs input_dim (the feature size)")
            self.image_embedder = None
            self.feature_dim = self.input_dim
        else:
            self.image_embedder = ImageEmbedder(
                backbone,
                image_size=image_size,
                embed_dim=embed_dim,
                weights=weights,
                width=backbone_width,
                input_dim=input_dim,
                hidden_units=tuple(hidden_units),
                dropout=dropout,
                freeze_batchnorm=freeze_batchnorm,
                name="image_embedder",
            )
            self.feature_dim = self.image_embedder.embed_dim
        self.head = SDLHead(self.word_dim, self.num_vectors, name="sdl_head")
        self.seen_vectors = self.add_weight(
            shape=(self.num_labels, self.word_dim),
            initializer="zeros",
            trainable=False,
            name="label_vectors",
        )
        if vectors is not None:
            self.seen_vectors.assign(vectors)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.rank_tracker = keras.metrics.Mean(name="rank_loss")
        self.reg_tracker = keras.metrics.Mean(name="reg_loss")
        self.build(self.input_shape_without_batch)

    # ------------------------------------------------------------------ structure
    @property
    def input_shape_without_batch(self) -> tuple[int, ...]:
        """``(H, W, 3)`` for images, ``(F,)`` for feature vectors."""
        if self.image_embedder is None:
            return (self.input_dim,)
        if self.image_embedder.backbone_name == "mlp":
            return (int(self.image_embedder.input_dim),)
        return (*self.image_embedder.image_size, 3)

    @property
    def label_vectors(self) -> np.ndarray:
        """The stored (seen) label vectors ``(L, d)``, unit rows."""
        return ops.convert_to_numpy(self.seen_vectors)

    @property
    def metrics(self):
        return [self.loss_tracker, self.rank_tracker, self.reg_tracker]

    def build(self, input_shape=None):
        if self.built:
            return
        if self.image_embedder is not None:
            self.image_embedder.build((None, *self.input_shape_without_batch))
        self.head.build((None, self.feature_dim))
        self.built = True

    @staticmethod
    def _inputs_of(x):
        if isinstance(x, dict):
            for key in ("images", "features"):
                if key in x:
                    return x[key]
            raise ValueError(
                f"an input dict needs an 'images' or 'features' entry, got keys {sorted(x)}"
            )
        return x

    # ------------------------------------------------------------------ forward pass
    def features(self, inputs, training: bool = False):
        """``φ(x)``: ``(B, F)`` features of a batch (array, tensor or input dict)."""
        x = self._inputs_of(inputs)
        if self.image_embedder is None:
            return ops.cast(x, self.compute_dtype)
        return self.image_embedder(x, training=training)

    def call(self, inputs, training=None):
        return self.head(self.features(inputs, training=training), self.seen_vectors)

    def _batches(self, x, batch_size: int) -> Iterator:
        if isinstance(x, tf.data.Dataset):
            for element in x:
                yield element[0] if isinstance(element, tuple) else element
            return
        x = self._inputs_of(x)
        n = int(x.shape[0])
        for start in range(0, n, batch_size):
            yield x[start : start + batch_size]

    def principal_vectors(self, x, batch_size: int = 256) -> np.ndarray:
        """``A`` for every input: ``(N, d, M)``."""
        parts = [
            ops.convert_to_numpy(self.head.principal_vectors(self.features(b)))
            for b in self._batches(x, batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.word_dim, self.num_vectors))

    def score(self, x, label_vectors, batch_size: int = 256) -> np.ndarray:
        """Scores ``(N, L')`` of any label set ``label_vectors`` ``(L', d)`` for inputs ``x``.

        ``x``: images, feature vectors, an input dict, or a ``tf.data.Dataset`` of inputs or of
        ``(inputs, labels)`` batches. The label vectors are L2-normalised first.
        """
        w = normalize_rows(label_vectors, "label_vectors")
        if w.shape[1] != self.word_dim:
            raise ValueError(f"label vectors have dimension {w.shape[1]}, expected {self.word_dim}")
        w = ops.convert_to_tensor(w)
        parts = [
            ops.convert_to_numpy(label_scores(self.head.principal_vectors(self.features(b)), w))
            for b in self._batches(x, batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, w.shape[0]), np.float32)

    # ------------------------------------------------------------------ training
    def compile(self, optimizer="adam", *, jit_compile=False, **kwargs):
        """``keras.Model.compile`` without ``loss``/``metrics``: the SDL loss is built in.

        Evaluate rankings with ``retdm_keras.zero_shot.evaluate_zero_shot``.
        """
        for key in ("loss", "metrics"):
            if kwargs.get(key) is not None:
                raise ValueError(f"SDL computes its own loss; do not pass {key}= to compile()")
            kwargs.pop(key, None)
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """Re-compile a loaded model from its saved compile config."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**{k: v for k, v in config.items() if k not in ("loss", "metrics")})
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_losses(self, x, y, sample_weight=None, training: bool = False):
        """``(total, rank term, regulariser term)`` of a batch, each a mean over the images
        with a positive label; ``y`` is multi-hot over the stored labels."""
        y = ops.convert_to_tensor(y)
        if y.shape[-1] is not None and int(y.shape[-1]) != self.num_labels:
            raise ValueError(f"labels have {y.shape[-1]} columns, the model has {self.num_labels}")
        matrix = self.head.principal_vectors(self.features(x, training=training))
        scores = label_scores(matrix, self.seen_vectors)
        terms = sdl_loss_terms(scores, matrix, y, self.seen_vectors)
        total = masked_mean(combine_sdl_terms(terms, self.lam), terms["valid"], sample_weight)
        rank = masked_mean(terms["omega"] * terms["rank"], terms["valid"], sample_weight)
        reg = masked_mean(terms["reg"], terms["valid"], sample_weight)
        return total, rank, reg

    def _record(self, total, rank, reg):
        self.loss_tracker.update_state(total)
        self.rank_tracker.update_state(rank)
        self.reg_tracker.update_state(reg)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            total, rank, reg = self.compute_losses(x, y, sample_weight, training=True)
            # The optimizer sums replica gradients: each replica contributes mean / replicas.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(total / tf.cast(replicas, total.dtype))
        weights = self.trainable_weights
        gradients = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
        return self._record(total, rank, reg)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return self._record(*self.compute_losses(x, y, sample_weight, training=False))

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = {
            "name": self.name,
            "num_labels": self.num_labels,
            "word_dim": self.word_dim,
            "backbone": self.backbone_name,
            "num_vectors": self.num_vectors,
            "lam": self.lam,
            "input_dim": self.input_dim,
            "label_names": self.label_names,
        }
        embedder = self.image_embedder
        if embedder is not None:
            config.update(
                image_size=list(embedder.image_size),
                embed_dim=embedder.embed_dim,
                weights=None,  # the saved file carries the weights
                backbone_width=embedder.width,
                hidden_units=list(embedder.hidden_units),
                dropout=embedder.dropout_rate,
                freeze_batchnorm=embedder.freeze_batchnorm,
            )
        return config
