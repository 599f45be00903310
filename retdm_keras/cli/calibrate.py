"""``retdm-keras calibrate``: a decision rule chosen on validation data."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from retdm_keras import recipes
from retdm_keras.cli.common import (
    MODEL_HELP,
    PROG,
    CLIError,
    DefaultsFormatter,
    add_backbone_runtime_argument,
    check_val_fraction,
    load_model,
    predict_scores,
    reject_arff_only_options,
    require_file,
    save_model,
    write_json,
)
from retdm_keras.cli.eval_data import check_input_kind, feature_eval_data, image_eval_data

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import tensorflow as tf

    from retdm_keras.model import RETDM


# Like the other choices of the parser, kept here rather than imported with the library
# module (building the parser stays light); the tests check it against thresholds.METHODS.
CALIBRATION_METHODS = ("per_class_f1", "global_f1", "top_k")

_EvalSet = tuple["tf.data.Dataset", "np.ndarray", str]


def _calibration_data(
    args: argparse.Namespace, model: RETDM, image_mode: bool
) -> tuple[_EvalSet, _EvalSet | None]:
    """The validation set (calibration) and the optional test set (comparison)."""
    if image_mode:
        from retdm_keras.data import load_split

        require_file(args.split_json, "split file")
        available = load_split(args.split_json)
        val_split = args.val_split or "val"
        for option, name in (("--val-split", val_split), ("--test-split", args.test_split)):
            if name is not None and name not in available:
                raise CLIError(
                    f"split {name!r} is not in {args.split_json}; available: "
                    f"{sorted(available)} (choose one with {option})"
                )
        test_split = args.test_split or ("test" if "test" in available else None)
        val = image_eval_data(args, model, val_split)
        return val, image_eval_data(args, model, test_split) if test_split else None

    from retdm_keras.data import feature_dataset

    def as_set(features: np.ndarray, labels: np.ndarray, title: str) -> _EvalSet:
        dataset = feature_dataset(features, labels, batch_size=args.batch_size, training=False)
        return dataset, labels, title

    features, labels = feature_eval_data(model, args.arff_train, args.labels_xml, args.num_labels)
    _, rows = recipes.split_off_validation(len(labels), args.val_fraction, args.seed)
    val = as_set(
        features[rows],
        labels[rows],
        f"{len(rows)} rows of {args.arff_train} held out by --val-fraction {args.val_fraction} "
        f"--seed {args.seed}",
    )
    if args.arff_test is None:
        return val, None
    features, labels = feature_eval_data(model, args.arff_test, args.labels_xml, args.num_labels)
    return val, as_set(features, labels, f"{args.arff_test} ({len(labels)} samples)")


def _describe_rule(rule: Any, names: Sequence[str]) -> str:
    if rule.method == "top_k":
        return f"the top {rule.k} labels of each image"
    if rule.method == "global_f1":
        return f"threshold {rule.values:.4f} for every label"
    width = max(len(n) for n in names)
    return "thresholds\n" + "\n".join(
        f"  {name:<{width}}  {value:.4f}" for name, value in zip(names, rule.values, strict=True)
    )


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``retdm-keras calibrate``: choose a decision rule on validation data, compare it with
    0.5 on test data, and optionally store it in the model."""
    image_mode = args.data_dir is not None or args.labels is not None
    if image_mode == (args.arff_train is not None):
        raise CLIError(
            "calibrate needs either --data-dir, --labels and --split-json, or --arff-train and "
            "--val-fraction"
        )
    if image_mode:
        if args.data_dir is None or args.labels is None or args.split_json is None:
            raise CLIError("calibrate needs --data-dir, --labels and --split-json (the val split)")
        reject_arff_only_options(args)
    else:
        if args.val_fraction is None:
            raise CLIError(
                "calibrate --arff-train needs --val-fraction (and the --seed used by train) to "
                "hold out the validation rows"
            )
        check_val_fraction(args.val_fraction)
        if args.val_split is not None or args.test_split is not None:
            raise CLIError("--val-split/--test-split only apply with --split-json")
    if args.k is not None and args.method != "top_k":
        raise CLIError("--k only applies to --method top_k")
    if args.save is not None and not args.save.endswith(".keras"):
        raise CLIError(f"--save needs a .keras file name, got {args.save}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")

    from retdm_keras.metrics import format_table
    from retdm_keras.thresholds import apply_to_model, calibrate, compare_thresholds

    model = load_model(args.model)
    check_input_kind(model, args.model, image_mode, "--arff-train")
    (val_ds, y_val, val_title), test = _calibration_data(args, model, image_mode)
    rule = calibrate(y_val, predict_scores(model, val_ds), args.method, k=args.k)
    names = model.label_names or [str(j) for j in range(model.num_labels)]
    print(f"{args.method} on {val_title}: {_describe_rule(rule, names)}")
    report: dict[str, Any] = {
        "model": args.model,
        "rule": rule.to_config(),
        "label_names": names,
        "validation": {"data": val_title, "samples": len(y_val)},
        "test": None,
    }
    if test is not None:
        test_ds, y_test, test_title = test
        table = compare_thresholds(y_test, predict_scores(model, test_ds), rule)
        print(f"{test_title}, 0.5 vs {rule.method}:")
        print(format_table(table))
        report["test"] = {"data": test_title, "samples": len(y_test), "metrics": table}
    if args.json is not None:
        write_json(args.json, report)
    if args.save is not None:
        apply_to_model(model, rule)
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        save_model(model, args.save)
        print(f"{PROG}: saved {args.save} with the {rule.method} rule")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="choose decision thresholds (or top-k) on validation data",
        description=(
            "Choose a decision rule on the validation data, compare it with 0.5 on the test "
            "data (if any), and with --save store it in a copy of the model."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("model", help=MODEL_HELP)
    images = p.add_argument_group("image data")
    images.add_argument("--data-dir", help="image folder")
    images.add_argument("--labels", help="annotation CSV")
    images.add_argument("--split-json", help="split file")
    images.add_argument("--val-split", help="split to calibrate on (default: val)")
    images.add_argument("--test-split", help="split to compare on (default: test if present)")
    arff = p.add_argument_group("feature-vector data (MULAN ARFF; 'mlp' models)")
    arff.add_argument("--arff-train", help="the training ARFF file given to train")
    arff.add_argument("--arff-test", help="test ARFF file to compare on")
    arff.add_argument("--labels-xml", help="MULAN labels XML naming the label attributes")
    arff.add_argument(
        "--num-labels", type=int, help="without XML: the last N attributes are labels"
    )
    arff.add_argument(
        "--val-fraction",
        type=float,
        help="calibrate on the rows train held out with this --val-fraction and --seed",
    )
    arff.add_argument("--seed", type=int, default=0, help="the --seed given to train")
    p.add_argument(
        "--method",
        choices=CALIBRATION_METHODS,
        default="per_class_f1",
        help="per-label F1 thresholds, one micro-F1 threshold, or the top k labels per image",
    )
    p.add_argument("--k", type=int, help="top_k: labels per image (default: chosen on val)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument("--json", help="write the rule (and the test comparison) to this JSON file")
    p.add_argument("--save", metavar="OUT.keras", help="save the model with the rule stored")
    add_backbone_runtime_argument(p)
    p.set_defaults(func=cmd_calibrate)
