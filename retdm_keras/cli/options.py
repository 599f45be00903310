"""The options of ``train`` and ``tune``: their argparse groups, the names (dests) of each
group, and the checks on them that need no data (what they build is ``training``'s)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from retdm_keras.cli.common import DEFAULT_IMAGE_BACKBONE, CLIError
from retdm_keras.recipes import ModelSpec, TrainingSpec

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
    "linear_skip",
)


FIT_OPTIONS = ("epochs", "learning_rates", "batch_size", "seed")


# Frozen-backbone training (train only; a recipe holds freeze_backbone and feature_views).
FROZEN_OPTIONS = ("freeze_backbone", "feature_views")


def check_fit_options(args: argparse.Namespace) -> None:
    """Raise a ``CLIError`` for bad ``--epochs``, ``--learning-rates`` or ``--batch-size``."""
    if len(args.epochs) != 3 or (args.learning_rates is not None and len(args.learning_rates) != 3):
        raise CLIError("--epochs and --learning-rates take three values (one per stage)")
    if min(args.epochs) < 0:
        raise CLIError(f"--epochs must be >= 0, got {args.epochs}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")


def reject_written(args: argparse.Namespace, dests: Sequence[str], why: str) -> None:
    """With ``--recipe``: raise if one of the options ``dests`` is on the command line."""
    written = ["--" + d.replace("_", "-") for d in dests if d in args.written]
    if written:
        raise CLIError(f"{', '.join(written)} cannot be combined with --recipe ({why})")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data options of ``train`` and ``tune`` (read by ``train_data``)."""
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
    p.add_argument(
        "--val-fraction",
        type=float,
        help="hold out this fraction of the training rows for validation when the data has "
        "no validation split (ARFF, or images without a val split; uses --seed). 'train' "
        "holds out 0.2 by default, to choose the tuned baseline's share, then retrains RETDM "
        "on all rows (--no-refit)",
    )


def add_model_arguments(p: argparse.ArgumentParser, loss_weights: bool = True) -> None:
    """The model options of ``train`` and ``tune`` (read by ``model_kwargs``)."""
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
    model.add_argument(
        "--linear-skip",
        action=argparse.BooleanOptionalAction,
        default=ModelSpec.linear_skip,
        help="ARFF feature vectors: the embedding also reads the features directly, beside "
        "the hidden layer (default: on)",
    )


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """The training options of ``train`` and ``tune`` (epochs, learning rates, batch size, seed)."""
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
        default=None,
        metavar=("L1", "L2", "L3"),
        help="initial learning rate per stage (default: 0.01 0.01 0.001 with SGD for images, "
        "0.0003 0.0003 0.00003 with Adam for ARFF feature vectors)",
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


def add_frozen_arguments(p: argparse.ArgumentParser) -> None:
    """``--freeze-backbone``, ``--feature-views``, ``--feature-cache`` (``train``)."""
    frozen = p.add_argument_group("frozen-backbone training")
    frozen.add_argument(
        "--freeze-backbone",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the pretrained CNN frozen in every stage and train on its pooled features, "
        "extracted once and cached (projection, heads and label side train as usual). "
        "Default: on for images with pretrained weights, off from scratch (--weights none), "
        "with --strategy multiworker and for ARFF; --no-freeze-backbone fine-tunes",
    )
    frozen.add_argument(
        "--feature-views",
        type=int,
        metavar="V",
        help="frozen backbone: views extracted per training image, the plain one and "
        f"V-1 augmented (each epoch draws one; default {TrainingSpec.feature_views})",
    )
    frozen.add_argument(
        "--feature-cache",
        metavar="DIR",
        help="frozen backbone: feature cache folder (default: "
        "$KERAS_HOME/retdm_features); 'none' disables it",
    )


def check_frozen_options(args: argparse.Namespace) -> None:
    """``--feature-views`` / ``--feature-cache`` need a frozen backbone; V >= 1 (the default
    ``TrainingSpec.feature_views`` is filled in here). ``--freeze-backbone`` left unset (None)
    is decided once the model is built (``resolve_freeze_backbone``); for ARFF data it is
    False here, and options that can only mean a frozen backbone are errors before any
    output folder is made."""
    given = [
        opt
        for opt, value in (
            ("--feature-views", args.feature_views),
            ("--feature-cache", args.feature_cache),
        )
        if value is not None
    ]
    if args.arff_train is not None:
        if args.freeze_backbone:
            raise CLIError("--freeze-backbone needs images: ARFF feature vectors have no backbone")
        if given:
            raise CLIError(f"{', '.join(given)} only apply to images (a frozen backbone)")
        args.freeze_backbone = False
    elif args.freeze_backbone is None and given and not _frozen_by_default(args):
        raise CLIError(
            f"{', '.join(given)} only apply with a frozen backbone, which is not the default "
            "from scratch (--weights none) or with --strategy multiworker: pass "
            "--freeze-backbone"
        )
    elif args.freeze_backbone is False and given:
        raise CLIError(f"{', '.join(given)} do not apply with --no-freeze-backbone")
    if args.feature_views is None:
        args.feature_views = TrainingSpec.feature_views
    if args.feature_views < 1:
        raise CLIError(f"--feature-views must be >= 1, got {args.feature_views}")


def _frozen_by_default(args: argparse.Namespace) -> bool:
    """Whether ``--freeze-backbone`` left unset is expected to mean frozen for images: the
    training policy's rule (``retdm_keras.training.policy.frozen_by_default``) asked with
    what the options say, before the model exists: a pretrained backbone (``--weights`` not
    'none') and the strategy. ``train`` decides for good once the model is built
    (``resolve_freeze_backbone``)."""
    from retdm_keras.training.policy import frozen_by_default  # train has loaded TensorFlow

    weights = getattr(args, "weights", None)
    pretrained = weights is None or weights.lower() != "none"
    return frozen_by_default(
        pretrained, multiworker=getattr(args, "strategy", "default") == "multiworker"
    )


def feature_cache(args: argparse.Namespace) -> str | bool | None:
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
