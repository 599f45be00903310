"""The labelled data that ``evaluate`` and ``calibrate`` read: an image split or an ARFF file,
checked against the model (its kind of input, its labels and their order)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from retdm_keras.cli.common import FEATURE_BACKBONE, CLIError, check_label_names, require_file

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import tensorflow as tf

    from retdm_keras.data import FeatureSet
    from retdm_keras.model import RETDM


def _load_feature_set(path: str, labels_xml: str | None, num_labels: int | None) -> FeatureSet:
    """The ARFF file ``path`` as a ``FeatureSet``; a missing file is a ``CLIError``."""
    from retdm_keras.data import load_arff

    require_file(path, "ARFF file")
    if labels_xml is not None:
        require_file(labels_xml, "labels XML")
    return load_arff(path, labels_xml=labels_xml, num_labels=num_labels)


def check_input_kind(model: RETDM, path: str, image_mode: bool, feature_option: str) -> None:
    """Raise unless the model takes the kind of input (images / feature vectors) given."""
    is_mlp = model.backbone == FEATURE_BACKBONE
    if image_mode and is_mlp:
        raise CLIError(f"{path} takes feature vectors (backbone 'mlp'): use {feature_option}")
    if not image_mode and not is_mlp:
        raise CLIError(f"{path} takes images (backbone {model.backbone!r}): use --data-dir")


def image_eval_data(
    args: argparse.Namespace, model: RETDM, split: str | None
) -> tuple[tf.data.Dataset, np.ndarray, str]:
    """``(dataset, labels, description)`` of a split of ``--data-dir``/``--labels`` (all rows
    without a split), in the model's label order and image size, unshuffled."""
    from retdm_keras.data import from_folder, read_labels_csv

    require_file(args.labels, "labels CSV")
    names = check_label_names(
        model.label_names, model.num_labels, read_labels_csv(args.labels).label_names, args.labels
    )
    dataset, files = from_folder(
        args.data_dir,
        args.labels,
        split=split,
        split_json=args.split_json if split is not None else None,
        label_names=names,
        image_size=tuple(model.image_embedder.image_size),
        batch_size=args.batch_size,
        training=False,
    )
    return dataset, files.labels, f"{split or 'all rows'} of {args.labels} ({len(files)} samples)"


def feature_eval_data(
    model: RETDM, path: str, labels_xml: str | None, num_labels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` of an ARFF file, checked against the model, labels in its order."""
    feature_set = _load_feature_set(path, labels_xml, num_labels)
    names = check_label_names(model.label_names, model.num_labels, feature_set.label_names, path)
    expected = int(model.image_embedder.input_dim)
    if feature_set.num_features != expected:
        raise CLIError(
            f"{path} has {feature_set.num_features} features but the model expects {expected}"
        )
    columns = [feature_set.label_names.index(n) for n in names]
    return feature_set.features, feature_set.labels[:, columns]
