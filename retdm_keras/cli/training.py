"""What the options of ``train`` and ``tune`` build: the training data and the model
(the options themselves are ``options``'s).

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
from retdm_keras.cli.common import (
    DEFAULT_IMAGE_BACKBONE,
    FEATURE_BACKBONE,
    PROG,
    CLIError,
    check_val_fraction,
    first_line,
    is_download_failure,
    reject_arff_only_options,
    require_file,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM


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
        if args.val_fraction is not None and (args.val_split or "val" in available):
            raise CLIError(
                f"--val-fraction: {args.split_json} has a validation split "
                f"({args.val_split or 'val'!r}); drop one of the two"
            )
    if args.val_fraction is not None:
        check_val_fraction(args.val_fraction)
    return recipes.image_folder_data(
        args.data_dir,
        args.labels,
        split_json=args.split_json,
        train_split=args.train_split,
        val_split=args.val_split,
        test_split=args.test_split,
        val_fraction=args.val_fraction,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=args.seed,
        cache=args.cache,
    )


def _feature_train_data(args: argparse.Namespace) -> recipes.TrainData:
    """Train/val/test datasets from ``--arff-train`` / ``--arff-test`` (MULAN ARFF;
    ``recipes.arff_data``)."""
    if args.val_fraction is not None:
        check_val_fraction(args.val_fraction)
    return recipes.arff_data(
        args.arff_train,
        args.arff_test,
        labels_xml=args.labels_xml,
        num_labels=args.num_labels,
        val_fraction=args.val_fraction,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def train_data(args: argparse.Namespace, recipe: recipes.Recipe | None = None) -> recipes.TrainData:
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
    reject_arff_only_options(args)
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
    return require_file(weights, "weights file")


def model_kwargs(
    args: argparse.Namespace, label_names: Sequence[str], input_dim: int | None = None
) -> tuple[dict[str, Any], str | None]:
    """``(RETDM keyword arguments, weights)`` from the model options, without ``num_labels``,
    ``weights`` and the searchable loss weights ``lam``/``mu``.

    The only place ``train`` / ``tune`` read the model options (see ``train_data``).
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
        linear_skip=args.linear_skip,
        input_dim=input_dim,
        label_names=list(label_names),
    )
    return kwargs, weights


def build_with_fallback(
    kwargs: dict[str, Any], weights: str | None, log: Callable[[str], None] | None = None
) -> tuple[RETDM, str | None]:
    """``RETDM(weights=weights, **kwargs)``, from scratch if ImageNet weights cannot be had."""
    from retdm_keras.model import RETDM

    try:
        return RETDM(weights=weights, **kwargs), weights
    except Exception as err:
        if weights != "imagenet" or not is_download_failure(err):
            raise
        message = f"training from scratch (ImageNet weights unavailable: {first_line(err)})"
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
    kwargs, weights = model_kwargs(args, label_names, input_dim)
    kwargs.update(num_labels=len(label_names), lam=args.lam, mu=args.mu)
    return build_with_fallback(kwargs, weights, log)


def describe_sizes(sizes: dict[str, int]) -> str:
    """The sample count of each split for the log: ``train 120, val 30``."""
    return ", ".join(f"{k} {v}" for k, v in sizes.items())
