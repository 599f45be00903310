"""MS-COCO as a multi-label image set: instances JSON files and tfds ``coco`` examples.

COCO is an object-detection set; RETDM (like most multi-label papers) uses it as a
multi-label one: an image carries label ``c`` when it has at least one instance of category
``c``. The 80 categories have ids 1..90 with gaps, so the label columns are the categories
*sorted by id* (``person`` first, ``toothbrush`` last), the order ``tfds`` uses as well.

Two sources give the same labels:

* a COCO-format ``instances_*.json`` next to an image folder (the official
  ``annotations_trainval2014.zip`` layout, or any tool that exports COCO JSON)::

      files = read_coco_instances("annotations/instances_train2014.json", "train2014")
      ds = image_dataset("train2014", files, image_size=224, training=True)

* the tensorflow-datasets ``coco/2014`` examples, whose ``objects/label`` already index the
  80 sorted categories: :func:`coco_multi_hot` turns one example into its multi-hot vector
  (``retdm_keras.datasets.coco_2014`` builds whole pipelines with it).

The paper's split is ``train2014`` for training and ``val2014`` for testing; images without
any instance are dropped by default (82,081 train / 40,137 test images remain).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.data.labels import LabeledFiles

__all__ = ["COCO_CLASSES", "coco_multi_hot", "read_coco_instances"]

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip
"""The 80 COCO category names in category-id order (the label columns)."""


def _require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ValueError(f"{where}: missing key {key!r}")
    return obj[key]


def read_coco_instances(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    *,
    keep_empty: bool = False,
) -> LabeledFiles:
    """Read a COCO instances JSON into multi-hot :class:`LabeledFiles`.

    Args:
        json_path: ``instances_<split>.json`` (``images``, ``annotations``, ``categories``).
        image_dir: the image folder; when given, only the *existence of the folder* is
            checked here (``image_dataset`` checks every file before building).
        keep_empty: keep images without any annotation as all-zero rows (default: drop them,
            as the paper does).

    Returns:
        Rows sorted by image id; ``filenames`` are the JSON's ``file_name`` (relative to
        ``image_dir``); ``label_names`` are the categories sorted by id.

    Raises:
        ValueError: malformed JSON, duplicate ids, or an annotation naming an unknown image
            or category (its annotation id is quoted).
        FileNotFoundError: ``json_path`` or ``image_dir`` does not exist.
    """
    path = os.fspath(json_path)
    if image_dir is not None and not os.path.isdir(image_dir):
        raise FileNotFoundError(f"image folder {os.fspath(image_dir)!r} does not exist")
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a COCO JSON object")

    categories = sorted(_require(data, "categories", path), key=lambda c: int(c["id"]))
    if not categories:
        raise ValueError(f"{path}: no categories")
    column = {}
    for i, category in enumerate(categories):
        cid = int(_require(category, "id", f"{path}: a category"))
        if cid in column:
            raise ValueError(f"{path}: category id {cid} appears twice")
        column[cid] = i
    names = [str(_require(c, "name", f"{path}: category {c.get('id')}")) for c in categories]

    images = sorted(_require(data, "images", path), key=lambda im: int(im["id"]))
    row = {}
    for i, image in enumerate(images):
        iid = int(_require(image, "id", f"{path}: an image"))
        if iid in row:
            raise ValueError(f"{path}: image id {iid} appears twice")
        row[iid] = i
    labels = np.zeros((len(images), len(names)), np.float32)
    for ann in _require(data, "annotations", path):
        where = f"{path}: annotation {ann.get('id', '?')}"
        image_id = int(_require(ann, "image_id", where))
        category_id = int(_require(ann, "category_id", where))
        if image_id not in row:
            raise ValueError(f"{where}: unknown image_id {image_id}")
        if category_id not in column:
            raise ValueError(f"{where}: unknown category_id {category_id}")
        labels[row[image_id], column[category_id]] = 1.0

    keep = np.ones(len(images), bool) if keep_empty else labels.any(axis=1)
    filenames = [
        str(_require(im, "file_name", f"{path}: image {im['id']}"))
        for im, k in zip(images, keep, strict=True)
        if k
    ]
    return LabeledFiles(filenames, labels[keep], names, source=path)


def coco_multi_hot(example: Mapping[str, Any], num_classes: int = len(COCO_CLASSES)) -> tf.Tensor:
    """The ``(80,)`` float32 multi-hot vector of one tfds ``coco`` example.

    ``example["objects"]["label"]`` holds the category index of each instance (tfds's
    ``ClassLabel`` over the categories sorted by id). Works eagerly on a decoded example (a
    dict of numpy arrays) and inside ``tf.data.Dataset.map``; no object gives all zeros.

    >>> coco_multi_hot({"objects": {"label": [0, 2, 2]}}).numpy()[:4]
    array([1., 0., 1., 0.], dtype=float32)
    """
    objects = example["objects"]
    labels = tf.reshape(tf.cast(objects["label"], tf.int32), (-1,))
    counts = tf.reduce_sum(tf.one_hot(labels, num_classes, dtype=tf.float32), axis=0)
    return tf.minimum(counts, 1.0)
