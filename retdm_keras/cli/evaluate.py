"""``retdm-keras evaluate``: the 12 metrics of a saved model, and the labelled-data readers
that ``calibrate`` shares."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from retdm_keras.cli.common import (
    FEATURE_BACKBONE,
    MODEL_HELP,
    CLIError,
    DefaultsFormatter,
    add_backbone_runtime_argument,
    check_label_names,
    evaluate_model,
    load_model,
    predict_scores,
    print_metrics,
    require_file,
    write_json,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import tensorflow as tf

    from retdm_keras.model import RETDM


def _load_feature_set(path: str, labels_xml: str | None, num_labels: int | None):
    from retdm_keras.data import load_arff

    require_file(path, "ARFF file")
    if labels_xml is not None:
        require_file(labels_xml, "labels XML")
    return load_arff(path, labels_xml=labels_xml, num_labels=num_labels)


def _check_input_kind(model: RETDM, path: str, image_mode: bool, feature_option: str) -> None:
    """Raise unless the model takes the kind of input (images / feature vectors) given."""
    is_mlp = model.backbone == FEATURE_BACKBONE
    if image_mode and is_mlp:
        raise CLIError(f"{path} takes feature vectors (backbone 'mlp'): use {feature_option}")
    if not image_mode and not is_mlp:
        raise CLIError(f"{path} takes images (backbone {model.backbone!r}): use --data-dir")


def _image_eval_data(
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


def _feature_eval_data(
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``retdm-keras evaluate``: the 12 metrics of a saved model on labelled data."""
    image_mode = args.data_dir is not None or args.labels is not None
    if image_mode == (args.arff is not None):
        raise CLIError("evaluate needs either --data-dir and --labels, or --arff")
    if image_mode and (args.data_dir is None or args.labels is None):
        raise CLIError("evaluate needs both --data-dir and --labels")
    if args.arff is None and (args.labels_xml is not None or args.num_labels is not None):
        raise CLIError("--labels-xml/--num-labels only apply with --arff")
    if args.split is not None and args.split_json is None:
        raise CLIError("--split needs --split-json")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")

    from retdm_keras.data import feature_dataset

    model = load_model(args.model)
    _check_input_kind(model, args.model, image_mode, "--arff")
    if image_mode:
        split = None
        if args.split_json is not None:
            require_file(args.split_json, "split file")
            split = args.split or "test"
        dataset, labels, title = _image_eval_data(args, model, split)
    else:
        features, labels = _feature_eval_data(model, args.arff, args.labels_xml, args.num_labels)
        dataset = feature_dataset(features, labels, batch_size=args.batch_size, training=False)
        title = f"{args.arff} ({len(labels)} samples)"

    results = evaluate_model(model, labels, predict_scores(model, dataset), args.threshold)
    print_metrics(f"{title}:", results)
    if args.json is not None:
        write_json(args.json, results)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compute the 12 multi-label metrics of a saved model",
        description="Evaluate a saved model on an image split or an ARFF file.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--data-dir", help="image folder")
    p.add_argument("--labels", help="annotation CSV")
    p.add_argument("--split-json", help="split file")
    p.add_argument("--split", help="split to evaluate (default: test)")
    p.add_argument("--arff", help="ARFF file (for 'mlp' models)")
    p.add_argument("--labels-xml", help="MULAN labels XML for --arff")
    p.add_argument("--num-labels", type=int, help="without XML: the last N attributes are labels")
    p.add_argument(
        "--threshold",
        type=float,
        help="decision threshold (default: the model's rule — top_k or thresholds — else 0.5)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    add_backbone_runtime_argument(p)
    p.set_defaults(func=cmd_evaluate)
