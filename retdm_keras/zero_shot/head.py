"""The SDL head and loss: principal vectors, max-dot label scores, diversity-weighted ranking.

See :mod:`retdm_keras.zero_shot` for the equations and where they come from.
"""

from __future__ import annotations

import keras
from keras import layers, ops

_PACKAGE = "retdm_keras"
REDUCTIONS = ("mean", "none")


def unit_rows(vectors):
    """``vectors`` with every row scaled to unit L2 norm (a tensor)."""
    return ops.normalize(ops.convert_to_tensor(vectors), axis=-1, order=2)


def label_scores(matrix, label_vectors):
    """``s_j = max_m <a_m, w_j>`` for ``A`` ``(B, d, M)`` and word vectors ``(L, d)`` → ``(B, L)``.

    ``label_vectors`` are used as given: pass unit vectors (``SDLHead`` normalises them).
    """
    products = ops.einsum("bdm,ld->blm", matrix, ops.cast(label_vectors, matrix.dtype))
    return ops.max(products, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SDLHead(layers.Layer):
    """Image features → ``M`` principal vectors in word space → a score for any label set.

    A bias-free Dense layer maps ``φ(x)`` ``(B, F)`` to ``d·M`` values, read as the matrix
    ``A`` of shape ``(B, d, M)`` (dimension-major, as the official code's
    ``view(B, d, M)``); column ``m`` is the principal vector ``a_m``. ``call(features,
    label_vectors)`` returns ``s_j = max_m <a_m, w_j>`` with ``w_j`` the L2-normalised rows of
    ``label_vectors`` ``(L, d)``: ``L`` is free, so unseen labels are scored the same way.

    Args:
        word_dim: ``d``, the word-vector dimension (300 for GloVe).
        num_vectors: ``M``, the number of principal vectors (the paper: 7).
        kernel_initializer: initializer of the Dense kernel ``(F, d·M)``.

    Example:

    >>> import numpy as np
    >>> head = SDLHead(word_dim=4, num_vectors=3)
    >>> features = np.ones((2, 5), "float32")
    >>> tuple(head(features, np.eye(4, dtype="float32")).shape)      # 4 labels
    (2, 4)
    >>> tuple(head(features, np.ones((9, 4), "float32")).shape)      # 9 other labels
    (2, 9)
    >>> tuple(head.principal_vectors(features).shape)
    (2, 4, 3)
    """

    def __init__(
        self,
        word_dim: int,
        num_vectors: int = 7,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(word_dim) < 1 or int(num_vectors) < 1:
            raise ValueError(
                f"word_dim and num_vectors must be >= 1, got {word_dim} and {num_vectors}"
            )
        self.word_dim = int(word_dim)
        self.num_vectors = int(num_vectors)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.embedding = layers.Dense(
            self.word_dim * self.num_vectors,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            name="embedding",
        )

    def build(self, features_shape, label_vectors_shape=None):
        self.embedding.build(features_shape)
        self.built = True

    def principal_vectors(self, features):
        """``A``: ``(B, d, M)``, column ``m`` is ``a_m``."""
        flat = self.embedding(features)
        return ops.reshape(flat, (-1, self.word_dim, self.num_vectors))

    def call(self, features, label_vectors):
        dim = label_vectors.shape[-1]
        if dim is not None and int(dim) != self.word_dim:
            raise ValueError(
                f"label vectors have dimension {dim}, but the head has word_dim={self.word_dim}"
            )
        w = unit_rows(ops.cast(label_vectors, self.compute_dtype))
        return label_scores(self.principal_vectors(features), w)

    def compute_output_shape(self, features_shape, label_vectors_shape):
        return (features_shape[0], label_vectors_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            word_dim=self.word_dim,
            num_vectors=self.num_vectors,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def sdl_loss_terms(scores, matrix, y, label_vectors):
    """Per-image parts of the SDL loss.

    Returns a dict of ``(B,)`` tensors: ``omega`` (ω_i), ``rank`` (the unweighted
    ``(1/|P_i|) Σ_p Σ_n softplus(s_n − s_p)``), ``reg`` (``Σ_d Var_m A_i[d, m]``, unbiased) and
    ``valid`` (1.0 where the image has a positive label, else 0.0). Positives are ``y > 0.5``;
    every other label is a negative.
    """
    s = ops.convert_to_tensor(scores)
    dtype = s.dtype
    pos = ops.cast(ops.convert_to_tensor(y) > 0.5, dtype)
    neg = 1.0 - pos
    w = unit_rows(ops.cast(label_vectors, dtype))
    n_pos = ops.sum(pos, axis=-1)
    at_least_one = ops.maximum(n_pos, 1.0)

    # diff[b, p, n] = s_n − s_p; only (positive p, negative n) pairs count.
    diff = s[:, None, :] - s[:, :, None]
    pairs = pos[:, :, None] * neg[:, None, :]
    rank = ops.sum(ops.softplus(diff) * pairs, axis=(1, 2)) / at_least_one

    # Σ_d Var_{p∈P}(w_p[d]) (unbiased) = Σ_p ||w_p − mean||² / (|P| − 1); 0 for |P| <= 1.
    mean = ops.matmul(pos, w) / at_least_one[:, None]
    sum_sq = ops.squeeze(ops.matmul(pos, ops.sum(w * w, axis=-1, keepdims=True)), axis=-1)
    spread = ops.maximum(sum_sq - n_pos * ops.sum(mean * mean, axis=-1), 0.0)
    diversity = ops.where(n_pos > 1.0, spread / ops.maximum(n_pos - 1.0, 1.0), 0.0)
    omega = 1.0 + diversity

    m = matrix.shape[-1]
    a = ops.cast(matrix, dtype)
    if m is not None and int(m) > 1:
        reg = ops.sum(ops.var(a, axis=-1), axis=-1) * (float(m) / (float(m) - 1.0))
    else:  # a single principal vector has no spread (the unbiased variance is undefined)
        reg = ops.zeros_like(rank)
    return {"omega": omega, "rank": rank, "reg": reg, "valid": ops.cast(n_pos > 0.0, dtype)}


def combine_sdl_terms(terms, lam: float | None = 0.3):
    """``L_i = (1 − λ)·ω_i·L_rank,i + λ·L_reg,i`` (``ω_i·L_rank,i`` when ``lam`` is None); 0 when
    image ``i`` has no positive label."""
    weighted_rank = terms["omega"] * terms["rank"]
    if lam is None:
        per_image = weighted_rank
    else:
        per_image = (1.0 - lam) * weighted_rank + lam * terms["reg"]
    return ops.where(terms["valid"] > 0.0, per_image, 0.0)


def masked_mean(values, valid, sample_weight=None):
    """Mean of ``values`` over the valid images (weighted); 0 when none is valid."""
    weights = valid if sample_weight is None else valid * ops.cast(sample_weight, valid.dtype)
    total = ops.sum(weights)
    return ops.where(total > 0.0, ops.sum(values * weights) / ops.maximum(total, 1e-12), 0.0)


def sdl_loss(
    scores,
    matrix,
    y,
    label_vectors,
    lam: float | None = 0.3,
    sample_weight=None,
    reduction: str = "mean",
):
    """The SDL loss of a batch.

    Args:
        scores: ``(B, L)`` label scores ``s_j = max_m <a_m, w_j>``.
        matrix: ``(B, d, M)`` principal-vector matrices ``A``.
        y: ``(B, L)`` multi-hot labels over the same ``L`` (seen) labels.
        label_vectors: ``(L, d)`` word vectors (L2-normalised here).
        lam: ``λ``, weight of the variance regulariser; ``None`` turns it off.
        sample_weight: optional ``(B,)`` image weights.
        reduction: ``"mean"`` over images with at least one positive label (0 if there is
            none), or ``"none"`` for the ``(B,)`` per-image losses (0 for skipped images).

    Example:

    >>> import numpy as np
    >>> a = np.zeros((1, 2, 3), "float32")
    >>> w = np.eye(2, dtype="float32")
    >>> round(float(sdl_loss(np.zeros((1, 2), "float32"), a, [[1.0, 0.0]], w)), 4)  # 0.7·log 2
    0.4852
    >>> float(sdl_loss(np.zeros((1, 2), "float32"), a, [[0.0, 0.0]], w))  # skipped
    0.0
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    terms = sdl_loss_terms(scores, matrix, y, label_vectors)
    per_image = combine_sdl_terms(terms, lam)
    if reduction == "none":
        return per_image
    return masked_mean(per_image, terms["valid"], sample_weight)
