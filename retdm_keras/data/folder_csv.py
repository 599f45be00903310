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

Every image is checked before anything is built (:mod:`~retdm_keras.data.image_check`:
missing, empty, corrupt, truncated, unsupported, 1-pixel or oversized files), so a bad file
is an error naming it and its CSV line, never a TensorFlow failure in the middle of an epoch;
``on_bad_image="skip"`` leaves such files out instead (the returned ``files`` are the kept
rows and ``index`` counts over them). Grayscale, palette, RGBA and 16-bit PNGs are converted
to 8-bit RGB (16-bit values rounded from the full 0..65535 range).

Example::

    ds, files = from_folder("miml_scene/images", "miml_scene/labels.csv",
                            split="train", split_json="miml_scene/split.json",
                            image_size=224, batch_size=32, training=True)
    model.fit(ds, epochs=10)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.data.augment import AUGMENTATION_ID, as_hw, eval_transform, train_transform
from retdm_keras.data.image_check import (
    BAD_IMAGE_ACTIONS,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MIN_IMAGE_SIZE,
    BadImageWarning,
    check_images,
)
from retdm_keras.data.image_decode import decode_image_file
from retdm_keras.data.labels import (
    LabeledFiles,
    check_files_exist,
    load_split,
    read_labels_csv,
)

# decode_image_file lives in image_decode (image_check uses it too); it stays importable here
__all__ = ["image_dataset", "from_folder", "decode_image_file", "SOURCE_ATTRIBUTE", "source_of"]

SOURCE_ATTRIBUTE = "retdm_source"
"""Attribute of the datasets :func:`image_dataset` returns: a dict describing what they read
(``image_dir``, ``files``, ``image_size``, ``training``, ``shuffle``, ``seed``,
``augmentation``). Frozen-backbone training keys its feature cache on it."""


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
    validate_images: bool | str = True,
    on_bad_image: str = "error",
    min_image_size: int = DEFAULT_MIN_IMAGE_SIZE,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    return_files: bool = False,
) -> tf.data.Dataset | tuple[tf.data.Dataset, LabeledFiles]:
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
        validate_images: check every image before building (see
            :func:`~retdm_keras.data.image_check.check_images`): ``True`` (default) cheap
            PIL checks, ``"full"`` decode each image once with TensorFlow, ``False`` only
            check that the files exist.
        on_bad_image: ``"error"`` (default) raises naming the bad files; ``"skip"`` leaves
            them out (missing files too) with one ``BadImageWarning``.
        min_image_size: images whose shorter side is smaller are bad (default 2).
        max_image_pixels: images with more pixels are bad (default ~89 M; ``None``: no limit).
        return_files: return ``(dataset, files)``, ``files`` being the rows actually used
            (fewer than given after ``"skip"``); ``index`` refers to them.

    Returns:
        The dataset, or ``(dataset, files)`` with ``return_files``.

    Raises:
        FileNotFoundError: the folder or some image files are missing
            (checked before anything is built).
        BadImageError: unusable images (a ``ValueError``; the message names the first few
            files with their CSV lines and the reason).
        ValueError: no samples or a non-positive batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(files) == 0:
        raise ValueError("files is empty: nothing to build a dataset from")
    if on_bad_image not in BAD_IMAGE_ACTIONS:
        raise ValueError(f"on_bad_image must be one of {BAD_IMAGE_ACTIONS}, got {on_bad_image!r}")
    if validate_images not in (True, False, "full"):
        raise ValueError(f"validate_images must be True, False or 'full', got {validate_images!r}")
    shuffle = training if shuffle is None else shuffle
    root = os.fspath(image_dir)
    if validate_images:
        files = check_images(
            root,
            files,
            on_bad_image=on_bad_image,
            full=validate_images == "full",
            min_image_size=min_image_size,
            max_image_pixels=max_image_pixels,
        )
    elif on_bad_image == "error":
        check_files_exist(root, files.filenames, csv_lines=files.csv_lines, source=files.source)
    else:
        files = _drop_missing(root, files)

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
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    setattr(
        ds,
        SOURCE_ATTRIBUTE,
        {
            "image_dir": os.path.abspath(root),
            "files": files,
            "image_size": list(as_hw(image_size)),
            "batch_size": int(batch_size),
            "drop_remainder": bool(drop_remainder),
            "training": bool(training),
            "shuffle": bool(shuffle),
            "seed": seed,
            "cache": cache if isinstance(cache, str) else bool(cache),
            "augmentation": AUGMENTATION_ID if training else "eval_transform",
        },
    )
    return (ds, files) if return_files else ds


def source_of(dataset: Any) -> dict[str, Any] | None:
    """What an :func:`image_dataset` dataset reads (see ``SOURCE_ATTRIBUTE``), or None for
    any other dataset (including one transformed after it was built)."""
    source = getattr(dataset, SOURCE_ATTRIBUTE, None)
    return source if isinstance(source, dict) else None


def _drop_missing(root: str, files: LabeledFiles) -> LabeledFiles:
    """``files`` without the rows whose image does not exist (with a ``BadImageWarning``)."""
    missing = [
        i for i, name in enumerate(files.filenames) if not os.path.isfile(os.path.join(root, name))
    ]
    if not missing:
        return files
    if len(missing) == len(files):
        check_files_exist(root, files.filenames, csv_lines=files.csv_lines, source=files.source)
    names = ", ".join(repr(files.filenames[i]) for i in missing[:5])
    warnings.warn(
        f"skipped {len(missing)} of {len(files)} missing image file(s) under {root!r}; "
        f"first: {names}",
        BadImageWarning,
        stacklevel=3,
    )
    gone = set(missing)
    return files.subset([i for i in range(len(files)) if i not in gone])


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
            ``batch_size``, ``training``, ``seed``, ``on_bad_image``, ...).

    Returns:
        ``(dataset, files)``; the dataset's ``index`` refers to rows of ``files``
        (the split, in the split file's order, without the images left out by
        ``on_bad_image="skip"``).

    Raises:
        FileNotFoundError, BadImageError, ValueError: before any dataset is built, with the
            CSV file and line of the offending rows (see :func:`image_dataset`).
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
    kwargs.pop("return_files", None)
    return image_dataset(image_dir, files, return_files=True, **kwargs)
