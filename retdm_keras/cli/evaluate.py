"""``retdm-keras evaluate``: the 12 metrics of a saved model on labelled data."""

from __future__ import annotations

import argparse

from retdm_keras.cli.common import (
    MODEL_HELP,
    CLIError,
    DefaultsFormatter,
    add_backbone_runtime_argument,
    evaluate_model,
    load_model,
    predict_scores,
    print_metrics,
    require_file,
    write_json,
)
from retdm_keras.cli.eval_data import check_input_kind, feature_eval_data, image_eval_data


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
    check_input_kind(model, args.model, image_mode, "--arff")
    if image_mode:
        split = None
        if args.split_json is not None:
            require_file(args.split_json, "split file")
            split = args.split or "test"
        dataset, labels, title = image_eval_data(args, model, split)
    else:
        features, labels = feature_eval_data(model, args.arff, args.labels_xml, args.num_labels)
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
