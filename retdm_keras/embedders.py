"""The two embedders of RETDM: ``f`` for images and ``g`` for label sets.

``ImageEmbedder`` (f) takes raw images (float pixels in [0, 255]) — or, with the ``"mlp"``
backbone, pre-extracted feature vectors — applies the backbone's own preprocessing, runs a
``keras.applications`` backbone, pools, and projects to ``embed_dim`` (512 in the paper).
``LabelEmbedder`` (g) maps a multi-hot label vector to the same space with two Dense layers.

Backbones (``ImageEmbedder.BACKBONES``):

=================== ==========================================================================
``vgg16``           the paper's network: VGG-16 with its last FC layer dropped and the second
                    FC replaced by ``embed_dim`` units. At 224 px with ImageNet weights the
                    pretrained ``fc1`` (4096) is kept; otherwise ``fc1`` is a new 4096 layer on
                    average-pooled conv features.
``resnet50``        ResNet-50, average-pooled.
``mobilenet``       MobileNet v1 (``width`` = alpha, default 0.25), average-pooled.
``mobilenet_v2``    MobileNetV2 (``width`` = alpha, default 1.0), average-pooled.
``efficientnetv2b0`` EfficientNetV2-B0 (preprocessing built in), average-pooled.
``mlp``             feature vectors of size ``input_dim`` → ``hidden_units`` ReLU layers.
``tiny_cnn``        three small conv blocks, for tests and quick experiments.
=================== ==========================================================================

``weights`` is ``"imagenet"``, ``None`` (random) or a path to a weights file, as in
``keras.applications``. It is used only when the layer is first created: ``get_config`` stores
``None`` because a saved model carries its own weights.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers, ops

_PACKAGE = "retdm_keras"
# Standard deviation of the label embedder's initial output bias (see LabelEmbedder).
BIAS_STDDEV = 0.01


def _scale_minus_one_to_one(x):
    return x / 127.5 - 1.0


def _scale_zero_to_one(x):
    return x / 255.0


def _caffe(x):
    # RGB -> BGR and ImageNet mean subtraction, as keras.applications.{vgg16,resnet50}.
    mean = ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)
    return ops.flip(x, axis=-1) - mean


def _identity(x):
    return x


_KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# sha256 of the ImageNet files we have verified; others are fetched without a hash check.
_KNOWN_SHA256 = {
    "mobilenet_2_5_224_tf_no_top.h5": (
        "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"
    ),
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5": (
        "71e4c4ec4aa24c9c951b9265d6de42e1336dcf614c2214fa6a989208615e232c"
    ),
}


def _imagenet_file(folder: str, fname: str) -> str:
    """The 224-px ImageNet weights file, from the Keras cache or downloaded (hash-checked).

    The cache is ``$KERAS_HOME/models`` with ``KERAS_HOME`` read now, not when Keras was
    imported, so it can be pointed at a folder of pre-fetched weights at any time.
    """
    return keras.utils.get_file(
        fname,
        _KERAS_WEIGHTS + folder + "/" + fname,
        cache_subdir="models",
        cache_dir=os.environ.get("KERAS_HOME"),
        file_hash=_KNOWN_SHA256.get(fname),
    )


def _load_mobilenet(model, weights, folder, fname):
    # MobileNets are fully convolutional below the top: the 224-px ImageNet weights fit any
    # input size, so they are used for all sizes (Keras would look for a per-size file).
    if weights == "imagenet":
        model.load_weights(_imagenet_file(folder, fname))
    elif weights is not None:
        model.load_weights(weights)
    return model


# name -> (preprocessing, builder(image_shape, weights, width) -> keras.Model, default width)
def _mobilenet(shape, weights, width):
    model = keras.applications.MobileNet(
        input_shape=shape, alpha=width, include_top=False, weights=None, pooling="avg"
    )
    width_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(float(width))
    if weights == "imagenet" and width_text is None:
        raise ValueError(f"no ImageNet MobileNet weights for width {width}")
    return _load_mobilenet(model, weights, "mobilenet", f"mobilenet_{width_text}_224_tf_no_top.h5")


def _mobilenet_v2(shape, weights, width):
    model = keras.applications.MobileNetV2(
        input_shape=shape, alpha=width, include_top=False, weights=None, pooling="avg"
    )
    fname = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(width)}_224_no_top.h5"
    return _load_mobilenet(model, weights, "mobilenet_v2", fname)


def _resnet50(shape, weights, width):
    return keras.applications.ResNet50(
        input_shape=shape, include_top=False, weights=weights, pooling="avg"
    )


def _efficientnetv2b0(shape, weights, width):
    return keras.applications.EfficientNetV2B0(
        input_shape=shape,
        include_top=False,
        weights=weights,
        pooling="avg",
        include_preprocessing=True,
    )


def _vgg16(shape, weights, width):
    if weights is not None and tuple(shape[:2]) == (224, 224):
        # Keep the pretrained fc1 (4096); fc2 becomes our projection, predictions are dropped.
        full = keras.applications.VGG16(input_shape=shape, include_top=True, weights=weights)
        return keras.Model(full.input, full.get_layer("fc1").output, name="vgg16_fc1")
    conv = keras.applications.VGG16(
        input_shape=shape, include_top=False, weights=weights, pooling="avg"
    )
    fc1 = layers.Dense(4096, activation="relu", name="fc1")(conv.output)
    return keras.Model(conv.input, fc1, name="vgg16_fc1")


def _tiny_cnn(shape, weights, width):
    if weights is not None:
        raise ValueError("the 'tiny_cnn' backbone has no pretrained weights; use weights=None")
    inputs = keras.Input(shape)
    x = inputs
    for filters in (8, 16, 32):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="tiny_cnn")


_BACKBONES = {
    "vgg16": (_caffe, _vgg16, None),
    "resnet50": (_caffe, _resnet50, None),
    "mobilenet": (_scale_minus_one_to_one, _mobilenet, 0.25),
    "mobilenet_v2": (_scale_minus_one_to_one, _mobilenet_v2, 1.0),
    "efficientnetv2b0": (_identity, _efficientnetv2b0, None),
    "tiny_cnn": (_scale_zero_to_one, _tiny_cnn, None),
}


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

    Examples:

    >>> import numpy as np
    >>> f = ImageEmbedder("tiny_cnn", image_size=32, embed_dim=16)
    >>> tuple(f(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 16)
    >>> f = ImageEmbedder("mlp", input_dim=294, embed_dim=16)
    >>> tuple(f(np.zeros((2, 294), "float32")).shape)
    (2, 16)
    """

    BACKBONES = (*_BACKBONES, "mlp")

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

        # === layers ===
        if backbone == "mlp":
            if not input_dim:
                raise ValueError("the 'mlp' backbone needs input_dim (the feature size)")
            self._preprocess = _identity
            if self.standardize:
                self.normalization = layers.Normalization(axis=-1, name="standardize")
            inputs = keras.Input((int(input_dim),))
            x = inputs
            for units in self.hidden_units:
                x = layers.Dense(units, activation="relu")(x)
            self.backbone = keras.Model(inputs, x, name="mlp")
        else:
            preprocess, build, default_width = _BACKBONES[backbone]
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
        scaled = scale * x + (1.0 - scale) * ops.stop_gradient(x)
        return self.projection(x), self.projection(scaled)

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
        )
        return config


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
