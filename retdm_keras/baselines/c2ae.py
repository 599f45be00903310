"""C2AE: the model, its pairwise ranking loss and ``fit_c2ae`` (also the feature
``standardiser`` the linear probe shares).

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
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

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

    # the public path, as before the package split: saved files name it ("module")
    __module__ = "retdm_keras.baselines"

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


def standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(mean, std)`` of ``features``, a std under 1e-6 replaced by 1."""
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
    mean, std = standardiser(features)
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
