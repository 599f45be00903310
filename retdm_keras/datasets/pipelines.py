"""From tfds examples to RETDM batches: ``({"images", "index"}, labels)``.

tensorflow-datasets stores encoded images; :func:`from_tfds` reads them undecoded (cheap to
shuffle), numbers the examples *before* shuffling (``index`` = position in the split, what the
memory bank needs), decodes, applies the same train/eval transforms as the CSV pipeline of
``retdm_keras.data`` and batches. :func:`load` does the whole trip for a registered builder
name: prepare (reading ``manual_dir`` for the builders of this package, downloading for tfds's
own ``coco`` and ``voc``), then :func:`from_tfds`::

    from retdm_keras.datasets import load
    train = load("mirflickr25k", "train[:70%]", manual_dir="~/data/mirflickr",
                 image_size=224, training=True, seed=0)
    model.fit(train.dataset, ...)   # train.num_examples, train.label_names

:func:`coco_2014` and :func:`voc_2007` are the same with the labels of those sets (the
paper's COCO split is ``"train"`` = train2014 vs ``"validation"`` = val2014).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import tensorflow as tf
import tensorflow_datasets as tfds

from retdm_keras.data.augment import eval_transform, train_transform
from retdm_keras.data.coco import COCO_CLASSES, coco_multi_hot
from retdm_keras.data.voc import VOC_CLASSES, voc_multi_hot

__all__ = ["TfdsData", "coco_2014", "from_tfds", "load", "prepare", "voc_2007"]

LabelFn = Callable[[Mapping[str, Any]], tf.Tensor]


class TfdsData(NamedTuple):
    """A RETDM-ready split: the batched dataset, its size (``None`` if filtered) and labels."""

    dataset: tf.data.Dataset
    num_examples: int | None
    label_names: list[str]


def _multi_hot(example: Mapping[str, Any]) -> tf.Tensor:
    return tf.cast(example["multi_hot"], tf.float32)


def from_tfds(
    examples: tf.data.Dataset,
    *,
    labels: LabelFn = _multi_hot,
    image_size: int | Sequence[int] = 224,
    batch_size: int = 32,
    training: bool = False,
    shuffle: bool | None = None,
    seed: int | None = None,
    shuffle_buffer: int = 4096,
    drop_empty: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Batched ``({"images", "index"}, labels)`` from a dataset of tfds example dicts.

    Args:
        examples: unbatched examples with an ``"image"`` (encoded bytes, e.g. read with
            ``decoders={"image": tfds.decode.SkipDecoding()}``, or a decoded uint8 image).
        labels: ``labels(example)`` → float32 ``(C,)`` multi-hot vector (default: the
            ``"multi_hot"`` feature of this package's builders).
        image_size: output size, an int or ``(height, width)``.
        batch_size: samples per batch.
        training: augment with ``train_transform`` (else ``eval_transform``) and, by
            default, shuffle.
        shuffle: reshuffle every epoch; default ``training``.
        seed: makes shuffling and augmentation reproducible.
        shuffle_buffer: shuffle-buffer size (encoded images, so a few thousand is cheap).
        drop_empty: drop examples without any label (before numbering them).
        num_parallel_calls: parallelism of decoding/augmentation.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shuffle = training if shuffle is None else shuffle

    def split(example):
        return example["image"], tf.cast(labels(example), tf.float32)

    ds = examples.map(split, num_parallel_calls=num_parallel_calls)
    if drop_empty:
        ds = ds.filter(lambda image, y: tf.reduce_any(y > 0))
    ds = ds.enumerate()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def decode(image: tf.Tensor) -> tf.Tensor:
        if image.dtype == tf.string:
            image = tf.io.decode_image(image, channels=3, expand_animations=False)
        image.set_shape((None, None, 3))
        return image

    if training:
        aug_seed = None if seed is None else seed + 1
        seeds = tf.data.Dataset.random(seed=aug_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds)

        def transform(element, pair):
            index, (image, y) = element
            image = train_transform(decode(image), image_size, seed=pair)
            return {"images": image, "index": index}, y
    else:

        def transform(index, element):
            image, y = element
            return {"images": eval_transform(decode(image), image_size), "index": index}, y

    ds = ds.map(transform, num_parallel_calls=num_parallel_calls)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def prepare(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
) -> tfds.core.DatasetBuilder:
    """``tfds.builder(name)`` with its data prepared (from ``manual_dir`` when given)."""
    # registers this package's builders with tfds
    from retdm_keras.datasets import miml_scene, mirflickr25k, nus_wide  # noqa: F401

    builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    config = None
    if manual_dir is not None:
        config = tfds.download.DownloadConfig(
            manual_dir=os.path.expanduser(os.fspath(manual_dir)), try_download_gcs=False
        )
    builder.download_and_prepare(download_config=config)
    return builder


def load(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
    labels: LabelFn | None = None,
    label_names: Sequence[str] | None = None,
    drop_empty: bool = False,
    **kwargs: Any,
) -> TfdsData:
    """Prepare builder ``name`` and return ``split`` as RETDM batches.

    Args:
        name: a tfds name, e.g. ``"miml_scene"``, ``"mirflickr25k"``, ``"nus_wide"``,
            ``"coco/2014"``, ``"voc/2007"``.
        split: a tfds split, slices allowed (``"train[:90%]"``).
        data_dir: where tfds keeps prepared data (default ``~/tensorflow_datasets``).
        manual_dir: the unpacked archive for manual-download builders.
        labels: multi-hot function of an example (default: its ``"multi_hot"`` feature).
        label_names: the names of the label columns (default: the builder's ``labels``).
        drop_empty: drop examples without labels (then ``num_examples`` is ``None``).
        **kwargs: passed to :func:`from_tfds` (``image_size``, ``batch_size``, ``training``...).
    """
    builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir)
    examples = builder.as_dataset(
        split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False
    )
    if label_names is None:
        label_names = builder.info.features["labels"].feature.names
    count = None if drop_empty else int(builder.info.splits[split].num_examples)
    dataset = from_tfds(examples, labels=labels or _multi_hot, drop_empty=drop_empty, **kwargs)
    return TfdsData(dataset, count, list(label_names))


def coco_2014(
    split: str, *, data_dir: str | os.PathLike[str] | None = None, **kwargs: Any
) -> TfdsData:
    """tfds ``coco/2014`` as multi-hot RETDM batches (images without objects dropped).

    The paper's split: ``coco_2014("train", training=True)`` (train2014, 82,081 images) and
    ``coco_2014("validation")`` (val2014, 40,137 images) as the test set.
    """
    return load(
        "coco/2014",
        split,
        data_dir=data_dir,
        labels=coco_multi_hot,
        label_names=COCO_CLASSES,
        drop_empty=True,
        **kwargs,
    )


def voc_2007(
    split: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    include_difficult: bool = False,
    **kwargs: Any,
) -> TfdsData:
    """tfds ``voc/2007`` as multi-hot RETDM batches; difficult objects ignored by default.

    The usual split: ``voc_2007("train+validation", training=True)`` and ``voc_2007("test")``.
    """

    def labels(example: Mapping[str, Any]) -> tf.Tensor:
        return voc_multi_hot(example, include_difficult=include_difficult)

    return load(
        "voc/2007", split, data_dir=data_dir, labels=labels, label_names=VOC_CLASSES, **kwargs
    )
