"""Reference multi-label baselines for the benchmarks: ML-kNN, C2AE and a linear probe.

All three work on fixed feature vectors ``(N, F)`` — frozen backbone features of images or the
MULAN feature sets — with multi-hot labels ``(N, C)``, and give ``(N, C)`` scores in ``[0, 1]``
that ``retdm_keras.metrics.evaluate`` can score at its 0.5 threshold.

``MLkNN`` (Zhang & Zhou, "ML-KNN: A lazy learning approach to multi-label learning", Pattern
Recognition 2007). For every label ``l``, with ``k`` nearest neighbours (Euclidean) and
smoothing ``s``:

* prior ``P(H1) = (s + #{i : y_il = 1}) / (2s + m)``, ``P(H0) = 1 - P(H1)``;
* over the training samples, ``c_i`` = how many of the ``k`` neighbours of ``i`` (itself
  excluded) carry ``l``; ``kj[c] = #{i : y_il = 1, c_i = c}``, ``kn[c] = #{i : y_il = 0,
  c_i = c}``, and ``P(E_c | H1) = (s + kj[c]) / (s(k + 1) + Σ_c' kj[c'])`` (same for ``H0``
  with ``kn``);
* a query with ``c`` neighbours carrying ``l`` scores the posterior
  ``P(H1) P(E_c | H1) / (P(H1) P(E_c | H1) + P(H0) P(E_c | H0))``.

The paper predicts ``l`` when ``P(H1) P(E_c|H1) > P(H0) P(E_c|H0)``, i.e. posterior > 0.5;
``evaluate`` uses ``>= 0.5``, which differs only for an exact tie. Neighbours are ordered by
distance, ties broken by the lower training index.

``C2AE`` (Yeh, Wu, Ko & Wang, "Learning Deep Latent Spaces for Multi-Label Classification",
AAAI 2017) as built here — a feature encoder ``Fx``, a label encoder ``Fe`` and a label decoder
``Fd``, trained on

``L = ‖Fx(x) − Fe(y)‖² + β · (‖ZxᵀZx/B − I‖² + ‖ZeᵀZe/B − I‖²) + α · Γ(y, Fd(Fe(y)))``

* ``‖Fx(x) − Fe(y)‖²``: squared distance of the two latent codes, averaged over the batch;
* the second term is the paper's canonical-correlation constraint
  ``Fx(X)ᵀFx(X) = Fe(Y)ᵀFe(Y) = I`` applied as a penalty on each batch (``Zx``, ``Ze`` the
  ``B × latent_dim`` codes) — our choice; the paper handles it with Lagrange terms;
* ``Γ`` is the decoder's reconstruction loss: the paper's label-correlation-aware pairwise loss
  ``1/(|y||ȳ|) Σ_{p ∈ y, q ∈ ȳ} exp(o_q − o_p)`` on the decoder logits ``o`` (``decoder_loss=
  "ranking"``), plus (default ``"ranking+bce"``) binary cross-entropy on the same logits, so
  that ``sigmoid(o) >= 0.5`` is a usable decision rule (ours; the ranking loss alone fixes no
  threshold). Logit differences are clipped at 30 inside ``exp``.

Prediction is ``sigmoid(Fd(Fx(x)))``: the decoder, trained on label codes, reads the feature
code. ``Fx``: Dense(hidden, ReLU) → Dense(latent); ``Fe``: Dense(hidden, ReLU) →
Dense(latent); ``Fd``: Dense(hidden, ReLU) → Dense(C). Sizes are ours.

``linear_probe`` — per-label logistic regression on (standardised) features: one Dense layer
with a sigmoid, BCE, L2 weight decay, trained with Adam.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(60, 4)).astype("float32")
>>> y = (x[:, :3] > 0).astype("float32")
>>> scores = MLkNN(k=5).fit(x, y).predict_proba(x[:2])
>>> scores.shape
(2, 3)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

__all__ = ["C2AE", "MLkNN", "fit_c2ae", "fit_linear_probe", "linear_probe", "nearest_neighbors"]


# --------------------------------------------------------------------------- #
# k nearest neighbours
# --------------------------------------------------------------------------- #
def nearest_neighbors(
    queries: np.ndarray,
    points: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    block_size: int = 1024,
) -> np.ndarray:
    """Indices ``(Q, k)`` of the ``k`` nearest ``points`` of each query (Euclidean).

    Ordered by distance, ties by the lower point index. With ``exclude_self`` the queries are
    the points themselves and query ``i`` never gets point ``i``. Distances are computed in
    float64 blocks of ``block_size`` queries (memory ``block_size × P``).
    """
    queries = np.asarray(queries, np.float64)
    points = np.asarray(points, np.float64)
    if queries.ndim != 2 or points.ndim != 2 or queries.shape[1] != points.shape[1]:
        raise ValueError(
            f"queries (Q, F) and points (P, F) must agree: {queries.shape} vs {points.shape}"
        )
    available = len(points) - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in 1..{available} for {len(points)} points, got {k}")
    if exclude_self and len(queries) != len(points):
        raise ValueError("exclude_self needs the queries to be the points themselves")
    point_norms = np.einsum("ij,ij->i", points, points)
    result = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), block_size):
        block = queries[start : start + block_size]
        dist = (
            np.einsum("ij,ij->i", block, block)[:, None]
            + point_norms[None, :]
            - 2.0 * block @ points.T
        )
        np.maximum(dist, 0.0, out=dist)
        rows = np.arange(len(block))
        if exclude_self:
            dist[rows, rows + start] = np.inf
        # candidates: the k smallest (argpartition), then a stable (distance, index) order
        candidates = np.argpartition(dist, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(dist, candidates, axis=1).max(axis=1)
        for r in range(len(block)):
            tied = np.flatnonzero(dist[r] <= kth[r])  # all points as close as the k-th
            order = np.lexsort((tied, dist[r, tied]))
            result[start + r] = tied[order[:k]]
    return result


# --------------------------------------------------------------------------- #
# ML-kNN
# --------------------------------------------------------------------------- #
class MLkNN:
    """Multi-label k nearest neighbours (Zhang & Zhou 2007), see the module docstring.

    Args:
        k: neighbours per sample (the paper: 10).
        s: Laplace smoothing (the paper: 1).

    Attributes (after ``fit``):
        prior_: ``(C,)`` ``P(H1)`` per label.
        cond_true_: ``(C, k + 1)`` ``P(E_c | H1)`` for ``c = 0..k``.
        cond_false_: ``(C, k + 1)`` ``P(E_c | H0)``.
    """

    def __init__(self, k: int = 10, s: float = 1.0):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if s < 0:
            raise ValueError(f"s must be >= 0, got {s}")
        self.k = int(k)
        self.s = float(s)

    def fit(self, features, labels) -> MLkNN:
        features = np.asarray(features, np.float64)
        labels = np.asarray(labels) > 0.5
        if features.ndim != 2 or labels.ndim != 2 or len(features) != len(labels):
            raise ValueError(
                f"features (N, F) and labels (N, C) must agree: {features.shape} vs {labels.shape}"
            )
        m, num_labels = labels.shape
        k, s = self.k, self.s
        self.prior_ = (s + labels.sum(axis=0)) / (2.0 * s + m)
        neighbours = nearest_neighbors(features, features, k, exclude_self=True)
        counts = labels[neighbours].sum(axis=1)  # (m, C): neighbours of i carrying l
        kj = np.zeros((num_labels, k + 1))
        kn = np.zeros((num_labels, k + 1))
        for label in range(num_labels):
            has = labels[:, label]
            kj[label] = np.bincount(counts[has, label], minlength=k + 1)
            kn[label] = np.bincount(counts[~has, label], minlength=k + 1)
        self.cond_true_ = (s + kj) / (s * (k + 1) + kj.sum(axis=1, keepdims=True))
        self.cond_false_ = (s + kn) / (s * (k + 1) + kn.sum(axis=1, keepdims=True))
        self._features = features
        self._labels = labels
        return self

    def neighbor_counts(self, features) -> np.ndarray:
        """``(Q, C)`` how many of each query's ``k`` training neighbours carry each label."""
        if not hasattr(self, "_features"):
            raise RuntimeError("call fit() first")
        neighbours = nearest_neighbors(np.asarray(features, np.float64), self._features, self.k)
        return self._labels[neighbours].sum(axis=1)

    def predict_proba(self, features) -> np.ndarray:
        """``(Q, C)`` posteriors ``P(H1 | E_c)`` in ``[0, 1]``."""
        counts = self.neighbor_counts(features)
        label_ids = np.arange(counts.shape[1])[None, :]
        true = self.prior_[None, :] * self.cond_true_[label_ids, counts]
        false = (1.0 - self.prior_[None, :]) * self.cond_false_[label_ids, counts]
        total = true + false
        return np.divide(true, total, out=np.full_like(true, 0.5), where=total > 0)

    def predict(self, features) -> np.ndarray:
        """``(Q, C)`` 0/1 predictions, the paper's rule (posterior strictly above 0.5)."""
        return (self.predict_proba(features) > 0.5).astype(np.int64)


# --------------------------------------------------------------------------- #
# C2AE
# --------------------------------------------------------------------------- #
DECODER_LOSSES = ("ranking", "bce", "ranking+bce")


def _mlp(hidden_units: int, out_units: int, name: str) -> keras.Sequential:
    return keras.Sequential(
        [layers.Dense(hidden_units, activation="relu"), layers.Dense(out_units)], name=name
    )


def pairwise_ranking_loss(labels, logits):
    """C2AE's ``Γ`` per sample: ``1/(|y||ȳ|) Σ_{p∈y, q∈ȳ} exp(o_q − o_p)``; 0 without pairs."""
    y = ops.cast(labels > 0.5, logits.dtype)
    pairs = y[:, :, None] * (1.0 - y)[:, None, :]  # (B, p, q): p relevant, q irrelevant
    diff = ops.minimum(logits[:, None, :] - logits[:, :, None], 30.0)  # o_q − o_p
    total = ops.sum(pairs * ops.exp(diff), axis=(1, 2))
    count = ops.sum(pairs, axis=(1, 2))
    return ops.where(count > 0, total / ops.maximum(count, 1.0), 0.0)


@keras.saving.register_keras_serializable(package="retdm_keras")
class C2AE(keras.Model):
    """Canonical-correlated autoencoder for multi-label features (see the module docstring).

    Args:
        num_labels: ``C``.
        input_dim: feature size ``F``.
        latent_dim: size of the shared latent space (default ``C``).
        hidden_units: hidden units of ``Fx``, ``Fe`` and ``Fd``.
        alpha: weight of the decoder loss ``Γ``.
        beta: weight of the whitening (canonical-correlation) penalty.
        decoder_loss: ``"ranking"`` (the paper's), ``"bce"`` or ``"ranking+bce"`` (default).

    Training data is ``(features, labels)``; ``call`` returns ``sigmoid(Fd(Fx(x)))``.

    >>> import numpy as np
    >>> model = C2AE(num_labels=3, input_dim=4, hidden_units=8)
    >>> model.predict(np.zeros((2, 4), "float32"), verbose=0).shape
    (2, 3)
    """

    def __init__(
        self,
        num_labels: int,
        input_dim: int,
        latent_dim: int | None = None,
        hidden_units: int = 512,
        alpha: float = 1.0,
        beta: float = 0.1,
        decoder_loss: str = "ranking+bce",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if decoder_loss not in DECODER_LOSSES:
            raise ValueError(f"decoder_loss must be one of {DECODER_LOSSES}, got {decoder_loss!r}")
        self.num_labels = int(num_labels)
        self.input_dim = int(input_dim)
        self.latent_dim = int(latent_dim or num_labels)
        self.hidden_units = int(hidden_units)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.decoder_loss = decoder_loss
        self.feature_encoder = _mlp(self.hidden_units, self.latent_dim, "feature_encoder")
        self.label_encoder = _mlp(self.hidden_units, self.latent_dim, "label_encoder")
        self.label_decoder = _mlp(self.hidden_units, self.num_labels, "label_decoder")
        self.latent_tracker = keras.metrics.Mean(name="latent_loss")
        self.whitening_tracker = keras.metrics.Mean(name="whitening_loss")
        self.decoder_tracker = keras.metrics.Mean(name="decoder_loss")
        self.feature_encoder.build((None, self.input_dim))
        self.label_encoder.build((None, self.num_labels))
        self.label_decoder.build((None, self.latent_dim))
        self.built = True

    def call(self, inputs, training=None):
        return ops.sigmoid(self.label_decoder(self.feature_encoder(inputs, training=training)))

    def _whitening(self, z):
        batch = ops.cast(ops.shape(z)[0], z.dtype)
        gram = ops.matmul(ops.transpose(z), z) / batch
        return ops.sum(ops.square(gram - ops.eye(self.latent_dim, dtype=z.dtype)))

    def _decoder_loss(self, y, logits):
        loss = 0.0
        if "ranking" in self.decoder_loss:
            loss = loss + ops.mean(pairwise_ranking_loss(y, logits))
        if "bce" in self.decoder_loss:
            loss = loss + ops.mean(keras.losses.binary_crossentropy(y, logits, from_logits=True))
        return loss

    def _loss_terms(self, x, y, training):
        y = ops.cast(y, "float32")
        zx = self.feature_encoder(x, training=training)
        ze = self.label_encoder(y, training=training)
        latent = ops.mean(ops.sum(ops.square(zx - ze), axis=-1))
        whitening = self._whitening(zx) + self._whitening(ze)
        decoder = self._decoder_loss(y, self.label_decoder(ze, training=training))
        total = latent + self.beta * whitening + self.alpha * decoder
        return total, latent, whitening, decoder

    def _track(self, total, latent, whitening, decoder):
        self._loss_tracker.update_state(total)
        self.latent_tracker.update_state(latent)
        self.whitening_tracker.update_state(whitening)
        self.decoder_tracker.update_state(decoder)
        return self.get_metrics_result()

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            total, latent, whitening, decoder = self._loss_terms(x, y, training=True)
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(total, weights), weights, strict=True))
        return self._track(total, latent, whitening, decoder)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(*self._loss_terms(x, y, training=False))

    def get_config(self):
        return {
            "name": self.name,
            "num_labels": self.num_labels,
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden_units": self.hidden_units,
            "alpha": self.alpha,
            "beta": self.beta,
            "decoder_loss": self.decoder_loss,
        }


def _standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    return mean, np.where(std > 1e-6, std, 1.0)


def fit_c2ae(
    features,
    labels,
    *,
    latent_dim: int | None = None,
    hidden_units: int = 512,
    alpha: float = 1.0,
    beta: float = 0.1,
    decoder_loss: str = "ranking+bce",
    epochs: int = 100,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    validation_data=None,
    verbose: int = 0,
) -> tuple[keras.Model, keras.callbacks.History]:
    """Train a ``C2AE`` on standardised features with Adam.

    Returns ``(model, history)``; ``model`` takes raw features (the standardisation is a
    ``Normalization`` layer in front of the ``C2AE``) and returns probabilities.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.float32)
    keras.utils.set_random_seed(seed)
    mean, std = _standardiser(features)
    c2ae = C2AE(
        labels.shape[1],
        features.shape[1],
        latent_dim=latent_dim,
        hidden_units=hidden_units,
        alpha=alpha,
        beta=beta,
        decoder_loss=decoder_loss,
    )
    c2ae.compile(optimizer=keras.optimizers.Adam(learning_rate))
    scaled = (features - mean) / std
    if validation_data is not None:
        vx, vy = validation_data
        validation_data = ((np.asarray(vx, np.float32) - mean) / std, np.asarray(vy, np.float32))
    history = c2ae.fit(
        scaled,
        labels,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        validation_data=validation_data,
        verbose=verbose,
    )
    inputs = keras.Input((features.shape[1],))
    normalised = layers.Normalization(mean=mean, variance=np.square(std))(inputs)
    return keras.Model(inputs, c2ae(normalised), name="c2ae_probe"), history


# --------------------------------------------------------------------------- #
# Linear probe
# --------------------------------------------------------------------------- #
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
    of epochs, without Keras's per-epoch overhead (4× faster for 1,400 samples).
    """
    import tensorflow as tf

    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.float32)
    keras.utils.set_random_seed(seed)
    mean, std = _standardiser(features)
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
