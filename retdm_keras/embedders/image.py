"""``ImageEmbedder`` (``f``): image or feature vector → embedding, on a registered backbone.

The backbones themselves (builders, preprocessing, ImageNet weights) are in
:mod:`retdm_keras.embedders.backbones`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from retdm_keras.embedders.backbones import IMAGE_BACKBONES, identity

_PACKAGE = "retdm_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ImageEmbedder(layers.Layer):
    """``f``: image (or feature vector) → ``embed_dim`` embedding.

    Args:
        backbone: one of ``ImageEmbedder.BACKBONES``.
        image_size: int or ``(height, width)`` of the input images (ignored for ``"mlp"``).
        embed_dim: size of the embedding (the paper: 512).
        weights: ``"imagenet"``, ``None`` or a weights file path (backbone only).
        width: width multiplier ``alpha`` for the MobileNets (default 0.25 for ``"mobilenet"``,
            1.0 for ``"mobilenet_v2"``).
        input_dim: feature size, required for ``"mlp"``.
        hidden_units: hidden layer sizes of the ``"mlp"`` backbone.
        dropout: dropout rate before the projection.
        freeze_batchnorm: keep the backbone's BatchNormalization layers in inference mode
            with frozen statistics (the usual way to fine-tune a pretrained network on a
            small data set). Default: True when ``weights`` is given, False from scratch.
        standardize: ``"mlp"`` only: standardise the features with a
            ``keras.layers.Normalization`` layer (saved with the model) whose mean and
            variance :meth:`adapt` sets from the training features (``fit_stages`` does it).
            Default True; features then need no scaling by hand.
        linear_skip: ``"mlp"`` only: the projection reads the (standardised) input
            features next to the last hidden layer, so the embedding has a linear path from
            the features besides the nonlinear one ("wide and deep"). Default False here;
            ``RETDM`` turns it on (see ``docs/method.md``, "A linear path for feature
            vectors").
        pretrained: the image backbone starts from trained weights (ImageNet, a weights
            file, a saved model) rather than a random initialisation. Default: True when
            ``weights`` is given; saved with the model, so a loaded model keeps it (files
            saved before it existed load as False). Always False for ``"mlp"``.
            ``fit_stages`` freezes a pretrained backbone by default.

    Examples:

    >>> import numpy as np
    >>> f = ImageEmbedder("tiny_cnn", image_size=32, embed_dim=16)
    >>> tuple(f(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 16)
    >>> f = ImageEmbedder("mlp", input_dim=294, embed_dim=16)
    >>> tuple(f(np.zeros((2, 294), "float32")).shape)
    (2, 16)
    """

    # the public path, as before the package split: saved files name it ("module")
    __module__ = "retdm_keras.embedders"

    BACKBONES = (*IMAGE_BACKBONES, "mlp")

    def __init__(
        self,
        backbone: str = "mobilenet_v2",
        image_size: int | tuple[int, int] = 224,
        embed_dim: int = 512,
        weights: str | None = None,
        width: float | None = None,
        input_dim: int | None = None,
        hidden_units: tuple[int, ...] = (512,),
        dropout: float = 0.0,
        freeze_batchnorm: bool | None = None,
        standardize: bool = True,
        linear_skip: bool = False,
        pretrained: bool | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if backbone not in self.BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {self.BACKBONES}")
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        # === config ===
        self.backbone_name = backbone
        self.image_size = tuple(int(s) for s in image_size)
        self.embed_dim = int(embed_dim)
        self.width = width
        self.input_dim = input_dim
        self.hidden_units = tuple(int(h) for h in hidden_units)
        self.dropout_rate = float(dropout)
        self.freeze_batchnorm = bool(
            weights is not None if freeze_batchnorm is None else freeze_batchnorm
        )
        self.standardize = bool(standardize) and backbone == "mlp"
        self.linear_skip = bool(linear_skip) and backbone == "mlp" and bool(self.hidden_units)
        self.pretrained = (
            bool(weights is not None if pretrained is None else pretrained) and backbone != "mlp"
        )

        # === layers ===
        if backbone == "mlp":
            if not input_dim:
                raise ValueError("the 'mlp' backbone needs input_dim (the feature size)")
            self._preprocess = identity
            if self.standardize:
                self.normalization = layers.Normalization(axis=-1, name="standardize")
            inputs = keras.Input((int(input_dim),))
            x = inputs
            for units in self.hidden_units:
                x = layers.Dense(units, activation="relu")(x)
            if self.linear_skip:
                x = layers.Concatenate(name="linear_skip")([x, inputs])
            self.backbone = keras.Model(inputs, x, name="mlp")
        else:
            preprocess, build, default_width = IMAGE_BACKBONES[backbone]
            self._preprocess = preprocess
            if self.width is None:
                self.width = default_width
            self.backbone = build((*self.image_size, 3), weights, self.width)
        self.dropout = layers.Dropout(self.dropout_rate)
        self.projection = layers.Dense(self.embed_dim, name="projection")
        self._freeze_batchnorm_layers()

    def _freeze_batchnorm_layers(self):
        if not self.freeze_batchnorm:
            return
        for layer in self.backbone._flatten_layers(include_self=False):
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False  # Keras 3: also runs the layer in inference mode

    @property
    def trainable(self):
        return super().trainable

    @trainable.setter
    def trainable(self, value):
        # Layer.trainable propagates to every sub-layer; re-freeze BatchNormalization after.
        layers.Layer.trainable.fset(self, value)
        if hasattr(self, "backbone"):
            self._freeze_batchnorm_layers()

    def build(self, input_shape):
        if self.standardize:
            self.normalization.build(input_shape)
        self.backbone.build(input_shape)
        self.projection.build(self.backbone.output.shape)
        self.built = True

    @property
    def needs_adaptation(self) -> bool:
        """True for a standardising ``"mlp"`` embedder whose statistics were never set."""
        if not self.standardize:
            return False
        norm = self.normalization
        mean, variance = norm.adapt_mean.numpy(), norm.adapt_variance.numpy()
        return bool(np.all(mean == 0.0) and np.all(variance == 1.0))

    def adapt(self, features) -> None:
        """Set the feature standardisation from training features.

        Args:
            features: an ``(N, F)`` array, or a ``tf.data.Dataset`` of feature batches.

        A feature that is constant in the training data keeps variance 1 (it is only
        centred), so a different value at test time cannot blow up to ``x / 1e-7``.
        """
        if not self.standardize:
            raise ValueError("adapt() needs an 'mlp' embedder with standardize=True")
        norm = self.normalization
        norm.adapt(features)
        mean = norm.adapt_mean.numpy()
        variance = norm.adapt_variance.numpy()
        if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(variance)):
            bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(variance)))
            raise ValueError(
                f"feature column(s) {bad[:10].tolist()} have non-finite values in the training "
                "data (NaN or Inf); clean or drop them before training"
            )
        constant = variance <= 1e-12 * np.maximum(1.0, mean * mean)
        norm.adapt_variance.assign(np.where(constant, 1.0, variance).astype(variance.dtype))
        norm.finalize_state()

    @property
    def feature_dim(self) -> int:
        """Size ``D`` of the pooled backbone output (the input of the projection)."""
        return int(self.backbone.output.shape[-1])

    def set_backbone_trainable(self, value: bool) -> None:
        """Make the backbone (and only it) trainable or frozen.

        Unlike setting ``backbone.trainable`` directly, this keeps the BatchNormalization
        layers frozen when ``freeze_batchnorm`` is on.
        """
        self.backbone.trainable = bool(value)
        self._freeze_batchnorm_layers()

    def backbone_features(self, inputs, training=None):
        """Pooled backbone features ``(B, D)`` of raw inputs: preprocessing, (feature
        standardisation for ``"mlp"``), backbone and pooling — everything before the
        dropout and the projection.

        ``embed_backbone_features(backbone_features(x))`` is ``call(x)``.
        """
        x = self._preprocess(ops.cast(inputs, self.compute_dtype))
        if self.standardize:
            # From the layer's variables rather than its call(): call() reads tensors cached
            # by finalize_state, which exporters (tf2onnx) see as extra graph inputs.
            norm = self.normalization
            mean = ops.cast(norm.adapt_mean, x.dtype)
            std = ops.maximum(ops.sqrt(ops.cast(norm.adapt_variance, x.dtype)), 1e-7)
            x = (x - mean) / std
        return self.backbone(x, training=training)

    def embed_backbone_features(self, features, training=None):
        """The embedding ``(B, embed_dim)`` of pooled backbone features ``(B, D)``: dropout,
        then the projection (the part of ``f`` above :meth:`backbone_features`)."""
        return self.projection(self._dropped(features, training))

    def _dropped(self, features, training):
        """Pooled backbone features in the compute dtype, after the dropout."""
        return self.dropout(ops.cast(features, self.compute_dtype), training=training)

    def embed_scaling_backbone_gradient(self, inputs, scale: float, training=None):
        """``(u, u_scaled)``: the embedding twice, from one forward pass.

        Both have the value of ``call(inputs)``, and gradients through either reach the
        projection in full; through ``u_scaled`` they reach the backbone (and the
        standardisation) multiplied by ``scale``. ``RETDM`` sends its metric loss through
        ``u_scaled`` (``backbone_metric_weight``). The projection is linear, so the two
        share the dropout mask and differ only in where the gradient stops.
        """
        x = self._dropped(self.backbone_features(inputs, training=training), training)
        return self.projection(x), self.projection(self._gradient_scaled(x, scale))

    def embed_with_scaled_backbone_gradient(self, inputs, scale: float, training=None):
        """``u_scaled`` of :meth:`embed_scaling_backbone_gradient` alone (one projection):
        the value of ``call(inputs)``, with its gradient into the backbone times ``scale``."""
        x = self._dropped(self.backbone_features(inputs, training=training), training)
        return self.projection(self._gradient_scaled(x, scale))

    @staticmethod
    def _gradient_scaled(x, scale: float):
        """``x`` in value; its gradient multiplied by ``scale``."""
        return scale * x + (1.0 - scale) * ops.stop_gradient(x)

    def call(self, inputs, training=None):
        features = self.backbone_features(inputs, training=training)
        return self.embed_backbone_features(features, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=self.backbone_name,
            image_size=list(self.image_size),
            embed_dim=self.embed_dim,
            weights=None,  # a saved model carries its own weights
            width=self.width,
            input_dim=self.input_dim,
            hidden_units=list(self.hidden_units),
            dropout=self.dropout_rate,
            freeze_batchnorm=self.freeze_batchnorm,
            standardize=self.standardize,
            linear_skip=self.linear_skip,
            pretrained=self.pretrained,
        )
        return config
