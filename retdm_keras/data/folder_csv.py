"""tf.data pipelines for a folder of images plus an annotation CSV.

The element structure is a contract with the model code::

    x = {"images": float32 (B, H, W, 3) raw pixels in [0, 255],
         "index":  int64 (B,)}
    y = float32 (B, C) multi-hot labels

``index`` is the sample's row in ``files.labels`` (``y == files.labels[index]``
always holds, shuffled or not); RETDM keeps a memory bank of image embeddings
addressed by it. Pixels are *not* normalised: each backbone applies its own
preprocessing inside the model.

Pipeline (``training=True``)::

    (path, label, index) --shuffle(N, reshuffle each epoch)--> read + decode
      --(cache)--> train_transform(per-element stateless seed) --> batch --> prefetch

Shuffling happens on filenames (cheap, full-dataset buffer) unless ``cache`` is
on, in which case decoded images are cached first and then shuffled. The
augmentation draws its crop/flip from a per-element seed produced by
``tf.data.Dataset.random(seed)``, so ``seed=...`` makes the whole epoch
sequence (order and crops) reproducible and every epoch still differs.

Example::

    ds, files = from_folder("miml_scene/images", "miml_scene/labels.csv",
                            split="train", split_json="miml_scene/split.json",
                            image_size=224, batch_size=32, training=True)
    model.fit(ds, epochs=10)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.data.augment import eval_transform, train_transform
from retdm_keras.data.labels import (
    LabeledFiles,
    check_files_exist,
    load_split,
    read_labels_csv,
)

__all__ = ["image_dataset", "from_folder", "decode_image_file"]


def decode_image_file(path: tf.Tensor) -> tf.Tensor:
    """Read and decode one JPEG/PNG/GIF/BMP file to a uint8 ``(H, W, 3)`` tensor.

    Grayscale images are replicated to 3 channels and an alpha channel is
    dropped (``tf.io.decode_image(channels=3)``); for an animated GIF only the
    first frame is used.
    """
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape((None, None, 3))
    return image


def image_dataset(
    image_dir: str | os.PathLike[str],
    files: LabeledFiles,
    *,
    image_size: int | Sequence[int] = 224,
    batch_size: int = 32,
    training: bool = False,
    shuffle: bool | None = None,
    seed: int | None = None,
    cache: bool | str = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Build a batched ``({"images", "index"}, labels)`` dataset.

    Args:
        image_dir: folder the filenames in ``files`` are relative to.
        files: the samples; ``index`` refers to rows of ``files.labels``.
        image_size: output size, an int or ``(height, width)``.
        batch_size: samples per batch.
        training: augment with :func:`train_transform` (otherwise
            :func:`eval_transform`) and, by default, shuffle.
        shuffle: shuffle every epoch; default ``training``.
        seed: makes shuffling and augmentation reproducible.
        cache: ``True`` caches decoded images in memory, a string caches them
            in files with that prefix (see ``tf.data.Dataset.cache``).
        num_parallel_calls: parallelism of decoding/augmentation.
        drop_remainder: drop the last incomplete batch.

    Raises:
        FileNotFoundError: the folder or some image files are missing
            (checked before anything is built).
        ValueError: no samples or a non-positive batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(files) == 0:
        raise ValueError("files is empty: nothing to build a dataset from")
    shuffle = training if shuffle is None else shuffle
    root = os.fspath(image_dir)
    check_files_exist(root, files.filenames, csv_lines=files.csv_lines, source=files.source)

    n = len(files)
    paths = [os.path.join(root, name) for name in files.filenames]
    ds = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant(paths, tf.string),
            tf.constant(files.labels, tf.float32),
            tf.constant(np.arange(n, dtype=np.int64)),
        )
    )

    def decode(path: tf.Tensor, label: tf.Tensor, index: tf.Tensor):
        return decode_image_file(path), label, index

    if cache is not False:
        ds = ds.map(decode, num_parallel_calls=num_parallel_calls)
        ds = ds.cache("" if cache is True else str(cache))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    else:
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(decode, num_parallel_calls=num_parallel_calls)

    if training:
        # One stateless (2,) seed per element; new draws every epoch.
        aug_seed = None if seed is None else seed + 1
        seeds = tf.data.Dataset.random(seed=aug_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds)

        def transform(element, pair):
            image, label, index = element
            image = train_transform(image, image_size, seed=pair)
            return {"images": image, "index": index}, label
    else:

        def transform(image, label, index):
            return {"images": eval_transform(image, image_size), "index": index}, label

    ds = ds.map(transform, num_parallel_calls=num_parallel_calls)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def from_folder(
    image_dir: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    *,
    split: str | None = None,
    split_json: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    label_names: Sequence[str] | None = None,
    **kwargs: Any,
) -> tuple[tf.data.Dataset, LabeledFiles]:
    """Read ``labels_csv``, optionally select one split, build the dataset.

    Args:
        image_dir: image folder.
        labels_csv: annotation CSV (see :func:`read_labels_csv`).
        split: split name in ``split_json`` (e.g. ``"train"``); ``None`` = all rows.
        split_json: ``{"train": [...], ...}`` file; required with ``split``.
        image_column, label_names: passed to :func:`read_labels_csv`.
        **kwargs: passed to :func:`image_dataset` (``image_size``,
            ``batch_size``, ``training``, ``seed``, ...).

    Returns:
        ``(dataset, files)``; the dataset's ``index`` refers to rows of ``files``
        (the split, in the split file's order).
    """
    files = read_labels_csv(labels_csv, image_column=image_column, label_names=label_names)
    if split is not None or split_json is not None:
        if split is None or split_json is None:
            raise ValueError("split and split_json must be given together")
        splits = load_split(split_json)
        if split not in splits:
            raise ValueError(
                f"split {split!r} not in {os.fspath(split_json)}; available: {sorted(splits)}"
            )
        files = files.subset(splits[split])
    return image_dataset(image_dir, files, **kwargs), files
