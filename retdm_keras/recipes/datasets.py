"""The datasets of a training run, built from a recipe's ``data`` section or from plain
arguments (the non-recipe ``retdm-keras train`` uses :func:`image_folder_data` and
:func:`arff_data` too).

The data formats and their fields (``*`` = required):

============== ==========================================================================
``folder_csv`` ``image_dir``\\*, ``labels``\\* (CSV), ``split_json``, ``train_split``,
               ``val_split``, ``test_split`` (default ``train``/``val``/``test`` when the
               split file has them), ``cache``
``arff``       ``train``\\*, ``test``, ``labels_xml`` or ``num_labels``, ``val_fraction``
``coco``       ``train_annotations``\\*, ``train_images``\\*, ``test_annotations``,
               ``test_images`` (COCO instances JSON), ``val_fraction``, ``cache``
``yolo``       ``class_names``\\* (YAML), ``train_labels``\\*, ``train_images``\\*,
               ``test_labels``, ``test_images``, ``val_fraction``, ``cache``
``tfds``       ``name``\\* (``miml_scene``, ``mirflickr25k``, ``nus_wide``, ``coco/2014``,
               ``voc/2007``), ``manual_dir``, ``data_dir``, ``train_split``, ``val_split``,
               ``test_split`` (tfds split strings, slices allowed)
============== ==========================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retdm_keras.recipes.errors import RecipeError
from retdm_keras.recipes.schema import Recipe

if TYPE_CHECKING:  # pragma: no cover - typing only
    import tensorflow as tf

    from retdm_keras.data.labels import LabeledFiles

__all__ = [
    "TrainData",
    "arff_data",
    "build_datasets",
    "image_folder_data",
    "split_off_validation",
]


@dataclass
class TrainData:
    """The datasets of one training run (shared by recipes and the CLI).

    Attributes:
        train: shuffled, augmented training batches with ``index``.
        bank: the training set un-augmented, in order (memory-bank passes).
        val: validation batches, or None.
        test: test batches, or None.
        test_labels: the test labels in batch order when known up front, else None
            (:func:`predict_with_labels` collects them from ``test`` in any case).
        label_names: the label names, in column order.
        sizes: samples per split (a tfds split filtered on the fly counts as -1).
        input_dim: the feature size for ARFF data (``backbone: mlp``), else None.
    """

    train: tf.data.Dataset
    bank: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset | None
    test_labels: np.ndarray | None
    label_names: list[str]
    sizes: dict[str, int]
    input_dim: int | None = None


def split_off_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(train rows, val rows)`` with ``round(fraction * n)`` rows held out.

    >>> split_off_validation(10, 0.2, seed=0)[1].tolist()
    [4, 6]
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"val_fraction {fraction} of {n} samples leaves no train or no val rows")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _files_data(
    train: LabeledFiles,
    train_dir: Path,
    test: LabeledFiles | None,
    test_dir: Path | None,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    val_fraction: float | None = None,
    val: LabeledFiles | None = None,
    cache: bool = False,
) -> TrainData:
    """Image datasets from :class:`LabeledFiles` (validation carved from train if asked)."""
    from retdm_keras.data import image_dataset

    if val_fraction is not None:
        train_rows, val_rows = split_off_validation(len(train), val_fraction, seed)
        train, val = train.subset(train_rows), train.subset(val_rows)
    common = dict(image_size=image_size, batch_size=batch_size, cache=cache)
    sizes = {"train": len(train)}
    train_ds = image_dataset(train_dir, train, training=True, seed=seed, **common)
    bank_ds = image_dataset(train_dir, train, training=False, shuffle=False, **common)
    val_ds = test_ds = None
    if val is not None:
        val_ds = image_dataset(train_dir, val, **common)
        sizes["val"] = len(val)
    if test is not None:
        if test.label_names != train.label_names:
            raise ValueError(
                f"test labels {test.label_names[:5]}... differ from train labels "
                f"{train.label_names[:5]}..."
            )
        test_ds = image_dataset(test_dir, test, **common)
        sizes["test"] = len(test)
    return TrainData(
        train_ds,
        bank_ds,
        val_ds,
        test_ds,
        None if test is None else test.labels,
        list(train.label_names),
        sizes,
    )


def image_folder_data(
    image_dir: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    *,
    split_json: str | os.PathLike[str] | None = None,
    train_split: str | None = None,
    val_split: str | None = None,
    test_split: str | None = None,
    val_fraction: float | None = None,
    image_size: int = 224,
    batch_size: int = 32,
    seed: int = 0,
    cache: bool = False,
) -> TrainData:
    """Train/val/test datasets from an image folder, an annotation CSV and a split file.

    Without ``split_json`` every row is training data. With it, ``train_split`` defaults to
    ``"train"`` and ``val_split``/``test_split`` to ``"val"``/``"test"`` when the file has
    them. ``val_fraction`` holds out that share of the training images (seeded) for
    validation; it needs data without a validation split.

    Raises:
        FileNotFoundError: the folder, CSV, split file or some images are missing.
        ValueError: a named split is not in the split file.
    """
    from retdm_keras.data import load_split, read_labels_csv

    for path, what in ((labels_csv, "labels CSV"), (split_json, "split file")):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{what} not found: {os.fspath(path)}")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"image folder not found: {os.fspath(image_dir)}")
    files = read_labels_csv(labels_csv)
    val = test = None
    if split_json is None:
        if train_split or val_split or test_split:
            raise ValueError("train_split/val_split/test_split need a split_json")
        train = files
    else:
        splits = load_split(split_json)
        for what, name in (("train_split", train_split), ("val_split", val_split)):
            if name is not None and name not in splits:
                raise ValueError(
                    f"{what} {name!r} is not in {os.fspath(split_json)}; available: "
                    f"{sorted(splits)}"
                )
        if test_split is not None and test_split not in splits:
            raise ValueError(
                f"test_split {test_split!r} is not in {os.fspath(split_json)}; available: "
                f"{sorted(splits)}"
            )
        train_split = train_split or "train"
        if train_split not in splits:
            raise ValueError(
                f"split {train_split!r} is not in {os.fspath(split_json)}; available: "
                f"{sorted(splits)}"
            )
        val_split = val_split or ("val" if "val" in splits else None)
        test_split = test_split or ("test" if "test" in splits else None)
        train = files.subset(splits[train_split])
        val = files.subset(splits[val_split]) if val_split else None
        test = files.subset(splits[test_split]) if test_split else None
    if val is not None and val_fraction is not None:
        raise ValueError(
            "val_fraction holds validation images out of the training split, but the split "
            "file has a validation split already"
        )
    root = Path(image_dir)
    return _files_data(
        train,
        root,
        test,
        root,
        val=val,
        val_fraction=val_fraction,
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        cache=cache,
    )


def arff_data(
    train_arff: str | os.PathLike[str],
    test_arff: str | os.PathLike[str] | None = None,
    *,
    labels_xml: str | os.PathLike[str] | None = None,
    num_labels: int | None = None,
    val_fraction: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> TrainData:
    """Train/val/test feature datasets from MULAN ARFF files (``backbone: mlp``).

    ``val_fraction`` holds out that share of the training rows (seeded) for validation.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: malformed ARFF, or train and test files that disagree on labels/features.
    """
    from retdm_keras.data import feature_dataset, load_arff

    for path, what in (
        (train_arff, "ARFF file"),
        (test_arff, "ARFF file"),
        (labels_xml, "labels XML"),
    ):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{what} not found: {os.fspath(path)}")
    train = load_arff(train_arff, labels_xml=labels_xml, num_labels=num_labels)
    features, labels = train.features, train.labels
    val_ds = None
    sizes: dict[str, int] = {}
    if val_fraction is not None:
        train_rows, val_rows = split_off_validation(len(train), val_fraction, seed)
        val_ds = feature_dataset(features[val_rows], labels[val_rows], batch_size=batch_size)
        sizes["val"] = len(val_rows)
        features, labels = features[train_rows], labels[train_rows]
    sizes = {"train": len(features), **sizes}
    train_ds = feature_dataset(features, labels, batch_size=batch_size, training=True, seed=seed)
    bank_ds = feature_dataset(features, labels, batch_size=batch_size)
    test_ds = test_labels = None
    if test_arff is not None:
        test = load_arff(test_arff, labels_xml=labels_xml, num_labels=num_labels)
        if test.label_names != train.label_names:
            raise ValueError(
                f"{os.fspath(test_arff)} has labels {test.label_names} but "
                f"{os.fspath(train_arff)} has {train.label_names}"
            )
        if test.num_features != train.num_features:
            raise ValueError(
                f"{os.fspath(test_arff)} has {test.num_features} features but "
                f"{os.fspath(train_arff)} has {train.num_features}"
            )
        test_ds = feature_dataset(test.features, test.labels, batch_size=batch_size)
        test_labels = test.labels
        sizes["test"] = len(test)
    return TrainData(
        train_ds,
        bank_ds,
        val_ds,
        test_ds,
        test_labels,
        list(train.label_names),
        sizes,
        input_dim=train.num_features,
    )


def _tfds_data(recipe: Recipe, image_size: int, batch_size: int, seed: int) -> TrainData:
    from retdm_keras.datasets import coco_2014, load, voc_2007

    data = recipe.data
    name = data.get("name")
    common = dict(data_dir=recipe.path("data_dir"), image_size=image_size, batch_size=batch_size)
    if name.startswith("coco/"):
        get = coco_2014 if name == "coco/2014" else None
    elif name.startswith("voc/"):
        get = voc_2007 if name == "voc/2007" else None
    else:

        def get(split: str, **kwargs: Any):
            return load(name, split, manual_dir=recipe.path("manual_dir"), **kwargs)

    if get is None:
        raise RecipeError(f"data.name: {name!r} is not supported; use coco/2014 or voc/2007")
    train_split = data.get("train_split", "train")
    train = get(train_split, training=True, seed=seed, **common)
    bank = get(train_split, training=False, shuffle=False, **common)
    sizes = {"train": -1 if train.num_examples is None else train.num_examples}
    val = test = None
    if data.get("val_split"):
        val = get(data.get("val_split"), **common)
        sizes["val"] = -1 if val.num_examples is None else val.num_examples
    if data.get("test_split"):
        test = get(data.get("test_split"), **common)
        sizes["test"] = -1 if test.num_examples is None else test.num_examples
    return TrainData(
        train.dataset,
        bank.dataset,
        None if val is None else val.dataset,
        None if test is None else test.dataset,
        None,
        train.label_names,
        sizes,
    )


def build_datasets(recipe: Recipe) -> TrainData:
    """The recipe's train (augmented + bank), val and test datasets.

    Raises:
        FileNotFoundError: data files are missing (the resolved path is quoted).
        RecipeError: a path variable is unset.
    """
    from retdm_keras.data.coco import read_coco_instances
    from retdm_keras.data.yolo import read_yolo_labels

    data, model, training = recipe.data, recipe.model, recipe.training
    if data.format == "arff":
        if model.backbone != "mlp":
            raise RecipeError(f"{recipe.source}: model.backbone: ARFF features need 'mlp'")
        return arff_data(
            recipe.path("train"),
            recipe.path("test"),
            labels_xml=recipe.path("labels_xml"),
            num_labels=data.get("num_labels"),
            val_fraction=data.get("val_fraction"),
            batch_size=training.batch_size,
            seed=training.seed,
        )
    if model.backbone == "mlp":
        raise RecipeError(f"{recipe.source}: model.backbone: 'mlp' needs data.format 'arff'")
    common = dict(
        image_size=model.image_size,
        batch_size=training.batch_size,
        seed=training.seed,
    )
    if data.format == "folder_csv":
        return image_folder_data(
            recipe.path("image_dir"),
            recipe.path("labels"),
            split_json=recipe.path("split_json"),
            train_split=data.get("train_split"),
            val_split=data.get("val_split"),
            test_split=data.get("test_split"),
            cache=bool(data.get("cache", False)),
            **common,
        )
    if data.format == "tfds":
        return _tfds_data(recipe, **common)
    if data.format == "coco":
        train_dir, test_dir = recipe.path("train_images"), recipe.path("test_images")
        train = read_coco_instances(recipe.path("train_annotations"), train_dir)
        test = None
        if recipe.path("test_annotations") is not None:
            test = read_coco_instances(recipe.path("test_annotations"), test_dir)
    else:  # yolo
        names = recipe.path("class_names")
        train_dir, test_dir = recipe.path("train_images"), recipe.path("test_images")
        train = read_yolo_labels(recipe.path("train_labels"), train_dir, names)
        test = None
        if recipe.path("test_labels") is not None:
            test = read_yolo_labels(recipe.path("test_labels"), test_dir, names)
    if test is not None and test_dir is None:
        raise RecipeError(f"{recipe.source}: data.test_images: required with test labels")
    return _files_data(
        train,
        train_dir,
        test,
        test_dir,
        val_fraction=data.get("val_fraction"),
        cache=bool(data.get("cache", False)),
        **common,
    )
