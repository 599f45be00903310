"""Reading one image file into pixels: the decoder of the image pipeline.

:func:`decode_image_file` is what :func:`~retdm_keras.data.folder_csv.image_dataset` maps
over the file paths, what ``check_images(full=True)`` (:mod:`~retdm_keras.data.image_check`)
tries on every file, and what ``retdm-keras predict`` reads its images with.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["decode_image_file"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_image_file(path: tf.Tensor) -> tf.Tensor:
    """Read and decode one JPEG/PNG/GIF/BMP/WebP file to a uint8 ``(H, W, 3)`` tensor.

    Grayscale images are replicated to 3 channels and an alpha channel is
    dropped (``tf.io.decode_image(channels=3)``); for an animated GIF only the
    first frame is used. A 16-bit PNG is decoded at 16 bits and scaled to
    ``round(v * 255 / 65535)`` (TensorFlow's own 8-bit decode drops the low byte).
    """
    data = tf.io.read_file(path)
    # PNG signature, then the IHDR chunk: its bit depth is byte 24.
    header = tf.strings.substr(data, 0, 25) + tf.constant(b"\0" * 25)
    is_png16 = tf.logical_and(
        tf.equal(tf.strings.substr(header, 0, 8), _PNG_SIGNATURE),
        tf.equal(tf.strings.substr(header, 24, 1), b"\x10"),
    )

    def decode_png16() -> tf.Tensor:
        wide = tf.cast(tf.io.decode_png(data, channels=3, dtype=tf.uint16), tf.float32)
        return tf.cast(tf.round(wide * (255.0 / 65535.0)), tf.uint8)

    def decode_any() -> tf.Tensor:
        return tf.io.decode_image(data, channels=3, expand_animations=False)

    image = tf.cond(is_png16, decode_png16, decode_any)
    image.set_shape((None, None, 3))
    return image
