"""Image augmentation used by RETDM (the CNN-RNN multi-scale corner crop).

Training images go through the recipe popularised by CNN-RNN and used by the
RETDM paper:

1. resize the whole image to ``resize_to x resize_to`` (256 x 256);
2. pick one of five crop positions (top-left, top-right, bottom-left,
   bottom-right, centre) and one crop scale from ``scales``
   (1.0, 0.875, 0.75, 0.66); the crop is a square of side
   ``round(scale * resize_to)`` at that position;
3. resize the crop to the network input size;
4. flip horizontally with probability 1/2.

Evaluation images are only resized to the input size. Both functions return
float32 pixels in ``[0, 255]``: normalisation is the backbone's business (the
model applies its own ``preprocess_input``), not the data pipeline's.

Both are plain TensorFlow functions of one ``(H, W, 3)`` image, so they can be
mapped over a ``tf.data.Dataset``. Randomness is either TensorFlow's global
RNG (``seed=None``) or *stateless*: pass a shape-``(2,)`` integer seed tensor
(or a Python int) and the same seed always yields the same crop and flip. The
image pipeline in :mod:`retdm_keras.data.folder_csv` feeds a fresh stateless
seed per element from ``tf.data.Dataset.random``, which makes a seeded
pipeline reproducible while still drawing new crops every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

__all__ = [
    "train_transform",
    "eval_transform",
    "DEFAULT_SCALES",
    "NUM_CROP_POSITIONS",
    "AUGMENTATION_ID",
    "as_hw",
]

DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
NUM_CROP_POSITIONS = 5  # 4 corners + centre
# Names the training augmentation as the image pipeline applies it (defaults of
# train_transform); change it whenever train_transform's output changes, so that cached
# frozen-backbone features of augmented views are rebuilt.
AUGMENTATION_ID = "five_crop_multiscale_flip/v1/resize256/scales=1.0,0.875,0.75,0.66"

ImageSize = int | Sequence[int]
Seed = int | Sequence[int] | tf.Tensor | None


def as_hw(image_size: ImageSize) -> tuple[int, int]:
    """``image_size`` as ``(height, width)`` (an int is a square); both must be positive."""
    if isinstance(image_size, int):
        hw = (image_size, image_size)
    else:
        hw = tuple(int(s) for s in image_size)
        if len(hw) != 2:
            raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    if min(hw) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return hw  # type: ignore[return-value]


def _as_float_image(image: tf.Tensor) -> tf.Tensor:
    image = tf.convert_to_tensor(image)
    image.shape.assert_has_rank(3)
    return tf.cast(image, tf.float32)


def _resize(image: tf.Tensor, hw: tuple[int, int]) -> tf.Tensor:
    out = tf.image.resize(image, hw, method="bilinear")
    # Bilinear stays inside the input range up to round-off; clip anyway so
    # the [0, 255] contract holds exactly.
    out = tf.clip_by_value(out, 0.0, 255.0)
    out.set_shape((hw[0], hw[1], image.shape[-1]))
    return out


def _stateless_seeds(seed: Seed) -> tf.Tensor | None:
    """Return three independent stateless seeds, shape (3, 2), or None."""
    if seed is None:
        return None
    if isinstance(seed, int):
        seed = (seed, 0)
    seed_t = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    seed_t = tf.reshape(seed_t, (2,))
    return tf.random.experimental.stateless_split(seed_t, num=3)


def _uniform_int(maxval: int, seed: tf.Tensor | None) -> tf.Tensor:
    if seed is None:
        return tf.random.uniform((), 0, maxval, dtype=tf.int32)
    return tf.random.stateless_uniform((), seed, 0, maxval, dtype=tf.int32)


def train_transform(
    image: tf.Tensor,
    image_size: ImageSize,
    *,
    seed: Seed = None,
    resize_to: int = 256,
    scales: Sequence[float] = DEFAULT_SCALES,
) -> tf.Tensor:
    """Multi-scale five-crop + horizontal flip training augmentation.

    Args:
        image: ``(H, W, 3)`` image, any real or integer dtype, values in [0, 255].
        image_size: output size, an int (square) or ``(height, width)``.
        seed: ``None`` (global RNG) or a stateless seed: an int or a
            shape-``(2,)`` integer tensor. Same seed, same augmentation.
        resize_to: side of the square the image is first resized to.
        scales: crop side as fractions of ``resize_to``; one is drawn uniformly.

    Returns:
        float32 ``(height, width, 3)`` tensor with values in ``[0, 255]``.
    """
    hw = as_hw(image_size)
    if resize_to < 1:
        raise ValueError(f"resize_to must be positive, got {resize_to}")
    scales = tuple(float(s) for s in scales)
    if not scales or not all(0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"scales must be non-empty fractions in (0, 1], got {scales}")
    # Crop sides are fixed by resize_to and scales, so compute them in Python.
    sides = tf.constant([max(1, round(s * resize_to)) for s in scales], tf.int32)

    seeds = _stateless_seeds(seed)
    pick = (lambda k: None) if seeds is None else (lambda k: seeds[k])

    image = _resize(_as_float_image(image), (resize_to, resize_to))
    side = tf.gather(sides, _uniform_int(len(scales), pick(0)))
    position = _uniform_int(NUM_CROP_POSITIONS, pick(1))
    room = resize_to - side  # free space left by the crop, per axis
    # Positions: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right, 4 centre.
    top = tf.gather(tf.stack([0, 0, room, room, room // 2]), position)
    left = tf.gather(tf.stack([0, room, 0, room, room // 2]), position)
    crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([side, side, -1]))
    out = _resize(crop, hw)

    if seeds is None:
        flip = tf.random.uniform(()) < 0.5
    else:
        flip = tf.random.stateless_uniform((), seeds[2]) < 0.5
    out = tf.where(flip, tf.reverse(out, axis=[1]), out)
    out.set_shape((hw[0], hw[1], 3))
    return out


def eval_transform(image: tf.Tensor, image_size: ImageSize) -> tf.Tensor:
    """Deterministic evaluation transform: resize to ``image_size`` only.

    Returns:
        float32 ``(height, width, 3)`` tensor with values in ``[0, 255]``.
    """
    out = _resize(_as_float_image(image), as_hw(image_size))
    out.set_shape((out.shape[0], out.shape[1], 3))
    return out
