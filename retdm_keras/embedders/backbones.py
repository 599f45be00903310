"""The backbone registry of ``ImageEmbedder``: builders, preprocessing, ImageNet weights.

``IMAGE_BACKBONES`` maps each image backbone's name to its preprocessing (raw pixels in
[0, 255] to the backbone's input range), its builder (a ``keras.applications`` network, or a
small CNN) and its default width. The MobileNets' 224-px ImageNet weights are loaded here
(``_imagenet_file``) so that they serve every input size.
"""

from __future__ import annotations

import os

import keras
from keras import layers, ops


def _scale_minus_one_to_one(x):
    return x / 127.5 - 1.0


def _scale_zero_to_one(x):
    return x / 255.0


def _caffe(x):
    # RGB -> BGR and ImageNet mean subtraction, as keras.applications.{vgg16,resnet50}.
    mean = ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)
    return ops.flip(x, axis=-1) - mean


def identity(x):
    """The input unchanged: the preprocessing of backbones that need none."""
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


# name -> (preprocessing, builder(image_shape, weights, width) -> keras.Model, default width)
IMAGE_BACKBONES = {
    "vgg16": (_caffe, _vgg16, None),
    "resnet50": (_caffe, _resnet50, None),
    "mobilenet": (_scale_minus_one_to_one, _mobilenet, 0.25),
    "mobilenet_v2": (_scale_minus_one_to_one, _mobilenet_v2, 1.0),
    "efficientnetv2b0": (identity, _efficientnetv2b0, None),
    "tiny_cnn": (_scale_zero_to_one, _tiny_cnn, None),
}
