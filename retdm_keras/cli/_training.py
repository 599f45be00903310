"""The data, model and schedule options of ``train`` and ``tune``, and what they build.

The datasets come from the functions recipes use (``recipes.image_folder_data``,
``recipes.arff_data``, ``recipes.build_datasets``); the option checks and their messages
are the command line's own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from retdm_keras import recipes
from retdm_keras.cli._common import (
    DEFAULT_IMAGE_BACKBONE,
    FEATURE_BACKBONE,
    PROG,
    CLIError,
    _check_val_fraction,
    _first_line,
    _is_download_failure,
    _reject_arff_only_options,
    _require_file,
)
from retdm_keras.recipes import ModelSpec, TrainingSpec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM


# The options of train/tune by group (argparse dests); with --recipe the recipe holds them.
DATA_OPTIONS = (
    "data_dir",
    "labels",
    "split_json",
    "train_split",
    "val_split",
    "test_split",
    "cache",
    "arff_train",
    "arff_test",
    "labels_xml",
    "num_labels",
    "val_fraction",
)

MODEL_OPTIONS = (
    "backbone",
    "image_size",
    "weights",
    "backbone_width",
    "embed_dim",
    "num_neighbors",
    "lam",
    "mu",
    "alpha",
    "margin",
    "distance",
    "neighbor_images",
    "dropout",
)

FIT_OPTIONS = ("epochs", "learning_rates", "batch_size", "seed")

# Frozen-backbone training (train only; a recipe holds freeze_backbone and feature_views).
FROZEN_OPTIONS = ("freeze_backbone", "feature_views")


def _image_train_data(args: argparse.Namespace) -> recipes.TrainData:
    """Train/val/test datasets from ``--data-dir``, ``--labels`` and ``--split-json``
    (``recipes.image_folder_data``; split names are checked here, against their options)."""
    from retdm_keras.data import load_split

    if args.split_json is None:
        if args.val_split or args.test_split or args.train_split:
            raise CLIError("--train-split/--val-split/--test-split need --split-json")
    elif os.path.isfile(args.split_json):  # a missing file is reported by image_folder_data
        available = load_split(args.split_json)
        for option, name in (
            ("--train-split", args.train_split),
            ("--val-split", args.val_split),
            ("--test-split", args.test_split),
        ):
            if name is not None and name not in available:
                raise CLIError(
                    f"{option}: split {name!r} is not in {args.split_json}; "
                    f"available: {sorted(available)}"
                )
        if args.train_split is None and "train" not in available:
            raise CLIError(
                f"split 'train' is not in {args.split_json}; "
                f"available: {sorted(available)} (choose one with --train-split)"
            )
    return recipes.image_folder_data(
        args.data_dir,
        args.labels,
        split_json=args.split_json,
        train_split=args.train_split,
        val_split=args.val_split,
        test_split=args.test_split,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=args.seed,
        cache=args.cache,
    )


def _feature_train_data(args: argparse.Namespace) -> recipes.TrainData:
    """Train/val/test datasets from ``--arff-train`` / ``--arff-test`` (MULAN ARFF;
    ``recipes.arff_data``)."""
    if args.val_fraction is not None:
        _check_val_fraction(args.val_fraction)
    return recipes.arff_data(
        args.arff_train,
        args.arff_test,
        labels_xml=args.labels_xml,
        num_labels=args.num_labels,
        val_fraction=args.val_fraction,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def _train_data(
    args: argparse.Namespace, recipe: recipes.Recipe | None = None
) -> recipes.TrainData:
    """The training data the data options of ``train`` / ``tune`` describe, or ``recipe``'s.

    The only place those commands read the data options (``--data-dir``, ``--labels``,
    ``--split-json``, ``--*-split``, ``--cache``, ``--image-size``, ``--arff-*``,
    ``--labels-xml``, ``--num-labels``, ``--val-fraction``, ``--batch-size``, ``--seed``).
    """
    if recipe is not None:
        return recipes.build_datasets(recipe)
    if args.arff_train is not None:
        image_only = [
            opt
            for opt, value in (
                ("--data-dir", args.data_dir),
                ("--labels", args.labels),
                ("--split-json", args.split_json),
            )
            if value is not None
        ]
        if image_only:
            raise CLIError(f"{', '.join(image_only)} cannot be combined with --arff-train")
        return _feature_train_data(args)
    if args.data_dir is None or args.labels is None:
        command = getattr(args, "command", None) or "train"
        raise CLIError(
            f"{command} needs --data-dir and --labels, --arff-train for ARFF, or --recipe"
        )
    _reject_arff_only_options(args)
    return _image_train_data(args)


def _resolve_weights(args: argparse.Namespace, feature_mode: bool) -> str | None:
    """``--weights`` as passed to ``RETDM``: ``"imagenet"``, ``None`` or a file path."""
    weights = args.weights
    if weights is None:  # the default depends on the input kind
        return None if feature_mode else "imagenet"
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        if feature_mode:
            raise CLIError("--weights imagenet does not apply to ARFF feature vectors")
        return "imagenet"
    if feature_mode:
        raise CLIError("--weights does not apply to ARFF feature vectors (backbone 'mlp')")
    return _require_file(weights, "weights file")


def _model_kwargs(
    args: argparse.Namespace, label_names: Sequence[str], input_dim: int | None = None
) -> tuple[dict[str, Any], str | None]:
    """``(RETDM keyword arguments, weights)`` from the model options, without ``num_labels``,
    ``weights`` and the searchable loss weights ``lam``/``mu``.

    The only place ``train`` / ``tune`` read the model options (see ``_train_data``).
    """
    feature_mode = input_dim is not None
    backbone = args.backbone or (FEATURE_BACKBONE if feature_mode else DEFAULT_IMAGE_BACKBONE)
    if feature_mode and backbone != FEATURE_BACKBONE:
        raise CLIError(f"ARFF feature vectors need --backbone {FEATURE_BACKBONE}, got {backbone!r}")
    if not feature_mode and backbone == FEATURE_BACKBONE:
        raise CLIError(f"--backbone {FEATURE_BACKBONE} is for ARFF feature vectors (--arff-train)")
    weights = _resolve_weights(args, feature_mode)
    kwargs = dict(
        backbone=backbone,
        image_size=args.image_size,
        embed_dim=args.embed_dim,
        num_neighbors=args.num_neighbors,
        alpha=args.alpha,
        margin=args.margin,
        distance=args.distance,
        neighbor_images=args.neighbor_images,
        backbone_width=args.backbone_width,
        dropout=args.dropout,
        input_dim=input_dim,
        label_names=list(label_names),
    )
    return kwargs, weights


def _build_with_fallback(
    kwargs: dict[str, Any], weights: str | None, log: Callable[[str], None] | None = None
) -> tuple[RETDM, str | None]:
    """``RETDM(weights=weights, **kwargs)``, from scratch if ImageNet weights cannot be had."""
    from retdm_keras.model import RETDM

    try:
        return RETDM(weights=weights, **kwargs), weights
    except Exception as err:
        if weights != "imagenet" or not _is_download_failure(err):
            raise
        message = f"training from scratch (ImageNet weights unavailable: {_first_line(err)})"
        (log or (lambda text: print(f"{PROG}: warning: {text}", file=sys.stderr)))(message)
        return RETDM(weights=None, **kwargs), None


def build_model(
    args: argparse.Namespace,
    label_names: Sequence[str],
    input_dim: int | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[RETDM, str | None]:
    """Build the ``RETDM`` the options describe; returns ``(model, weights actually used)``.

    If the ImageNet weights cannot be downloaded, a message is logged and the model is built
    from scratch (random initialisation) instead.
    """
    kwargs, weights = _model_kwargs(args, label_names, input_dim)
    kwargs.update(num_labels=len(label_names), lam=args.lam, mu=args.mu)
    return _build_with_fallback(kwargs, weights, log)


def _check_fit_options(args: argparse.Namespace) -> None:
    if len(args.epochs) != 3 or len(args.learning_rates) != 3:
        raise CLIError("--epochs and --learning-rates take three values (one per stage)")
    if min(args.epochs) < 0:
        raise CLIError(f"--epochs must be >= 0, got {args.epochs}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")


def _describe_sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sizes.items())


def _reject_written(args: argparse.Namespace, dests: Sequence[str], why: str) -> None:
    """With ``--recipe``: raise if one of the options ``dests`` is on the command line."""
    written = ["--" + d.replace("_", "-") for d in dests if d in args.written]
    if written:
        raise CLIError(f"{', '.join(written)} cannot be combined with --recipe ({why})")


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data options of ``train`` and ``tune`` (read by ``_train_data``)."""
    images = p.add_argument_group("image data")
    images.add_argument("--data-dir", help="folder the CSV's image paths are relative to")
    images.add_argument("--labels", help="annotation CSV (one-hot or label-list)")
    images.add_argument("--split-json", help='split file {"train": [...], "val": [...], ...}')
    images.add_argument("--train-split", help="training split name (default: 'train')")
    images.add_argument("--val-split", help="validation split (default: 'val' if present)")
    images.add_argument("--test-split", help="test split (default: 'test' if present)")
    images.add_argument("--cache", action="store_true", help="cache decoded images in memory")

    arff = p.add_argument_group("feature-vector data (MULAN ARFF; backbone 'mlp')")
    arff.add_argument("--arff-train", help="training ARFF file")
    arff.add_argument("--arff-test", help="test ARFF file")
    arff.add_argument("--labels-xml", help="MULAN labels XML naming the label attributes")
    arff.add_argument(
        "--num-labels", type=int, help="without XML: the last N attributes are labels"
    )
    arff.add_argument(
        "--val-fraction",
        type=float,
        help="hold out this fraction of the training rows for validation (uses --seed)",
    )


def _add_model_arguments(p: argparse.ArgumentParser, loss_weights: bool = True) -> None:
    """The model options of ``train`` and ``tune`` (read by ``_model_kwargs``)."""
    model = p.add_argument_group("model")
    model.add_argument(
        "--backbone",
        help=f"image backbone (default: {DEFAULT_IMAGE_BACKBONE}; 'mlp' for ARFF)",
    )
    model.add_argument(
        "--image-size", type=int, default=ModelSpec.image_size, help="input image side"
    )
    model.add_argument(
        "--weights",
        help="'imagenet', 'none' or a weights file (default: imagenet for images)",
    )
    model.add_argument("--backbone-width", type=float, help="MobileNet width multiplier")
    model.add_argument("--embed-dim", type=int, default=ModelSpec.embed_dim, help="embedding size")
    model.add_argument(
        "--num-neighbors", type=int, default=ModelSpec.num_neighbors, help="K neighbour label sets"
    )
    if loss_weights:
        model.add_argument(
            "--lam", type=float, default=ModelSpec.lam, help="weight of the metric loss"
        )
        model.add_argument(
            "--mu", type=float, default=ModelSpec.mu, help="weight of the reconstruction loss"
        )
    model.add_argument(
        "--alpha", type=float, default=ModelSpec.alpha, help="weight of the second way"
    )
    model.add_argument("--margin", type=float, default=ModelSpec.margin, help="metric-loss margin")
    model.add_argument(
        "--distance", choices=("sqeuclidean", "euclidean"), default=ModelSpec.distance
    )
    model.add_argument(
        "--neighbor-images", choices=("memory_bank", "exact"), default=ModelSpec.neighbor_images
    )
    model.add_argument(
        "--dropout", type=float, default=ModelSpec.dropout, help="dropout before projection"
    )


def _add_fit_arguments(p: argparse.ArgumentParser) -> None:
    fit = p.add_argument_group("training")
    fit.add_argument(
        "--epochs",
        type=int,
        nargs=3,
        default=list(TrainingSpec.epochs),
        metavar=("E1", "E2", "E3"),
        help="epochs of the classifier, metric and joint stages",
    )
    fit.add_argument(
        "--learning-rates",
        type=float,
        nargs=3,
        default=list(TrainingSpec.learning_rates),
        metavar=("L1", "L2", "L3"),
        help="initial learning rate per stage",
    )
    fit.add_argument("--batch-size", type=int, default=TrainingSpec.batch_size)
    fit.add_argument("--seed", type=int, default=TrainingSpec.seed, help="random seed")
    fit.add_argument(
        "--verbose",
        type=_verbosity,
        default="auto",
        metavar="{auto,0,1,2}",
        help="Keras verbosity: auto = progress bars on a terminal, one line per epoch otherwise",
    )


def _add_frozen_arguments(p: argparse.ArgumentParser) -> None:
    """``--freeze-backbone``, ``--feature-views``, ``--feature-cache`` (``train``)."""
    frozen = p.add_argument_group("frozen-backbone training")
    frozen.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="keep the pretrained CNN frozen in every stage and train on its pooled features, "
        "extracted once and cached (projection, heads and label side train as usual)",
    )
    frozen.add_argument(
        "--feature-views",
        type=int,
        metavar="V",
        help="with --freeze-backbone: views extracted per training image, the plain one and "
        f"V-1 augmented (each epoch draws one; default {TrainingSpec.feature_views})",
    )
    frozen.add_argument(
        "--feature-cache",
        metavar="DIR",
        help="with --freeze-backbone: feature cache folder (default: "
        "$KERAS_HOME/retdm_features); 'none' disables it",
    )


def _check_frozen_options(args: argparse.Namespace) -> None:
    """``--feature-views`` / ``--feature-cache`` need ``--freeze-backbone``; V >= 1 (the
    default ``TrainingSpec.feature_views`` is filled in here)."""
    if not args.freeze_backbone:
        given = [
            opt
            for opt, value in (
                ("--feature-views", args.feature_views),
                ("--feature-cache", args.feature_cache),
            )
            if value is not None
        ]
        if given:
            raise CLIError(f"{', '.join(given)} only apply with --freeze-backbone")
        args.feature_views = TrainingSpec.feature_views
        return
    if args.feature_views is None:
        args.feature_views = TrainingSpec.feature_views
    if args.feature_views < 1:
        raise CLIError(f"--feature-views must be >= 1, got {args.feature_views}")
    if args.arff_train is not None:
        raise CLIError("--freeze-backbone needs images: ARFF feature vectors have no backbone")


def _feature_cache(args: argparse.Namespace) -> str | bool | None:
    """``--feature-cache`` as ``fit_stages`` takes it: a folder, False for 'none', or None."""
    value = getattr(args, "feature_cache", None)
    if value is not None and value.lower() == "none":
        return False
    return value


def _verbosity(text: str) -> int | str:
    """``--verbose``: ``auto`` or 0, 1, 2."""
    if text == "auto":
        return "auto"
    if text in ("0", "1", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto, 0, 1 or 2, got {text!r}")
