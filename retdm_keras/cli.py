"""Command-line interface: ``retdm-keras train | evaluate | predict``.

A thin shell over the Python API (:class:`retdm_keras.RETDM`, :func:`retdm_keras.fit_stages`,
:mod:`retdm_keras.data`, :mod:`retdm_keras.metrics`); it adds argument parsing, file output and
error reporting, no learning logic of its own.

Examples::

    # Train on an image folder + one-hot CSV with a train/val/test split file; writes
    # model.keras, labels.json, history.json, train_config.json (+ metrics.json with a test split)
    retdm-keras train --data-dir miml_scene/images --labels miml_scene/labels.csv \\
        --split-json miml_scene/split.json --out runs/scene --epochs 10 5 10

    # Train on MULAN ARFF feature vectors (backbone "mlp"), 10 % of train held out for validation
    retdm-keras train --arff-train scene-train.arff --arff-test scene-test.arff \\
        --labels-xml scene.xml --val-fraction 0.1 --out runs/scene-arff

    # The 12 metrics of a saved model on a split (or on an ARFF file with --arff)
    retdm-keras evaluate runs/scene/model.keras --data-dir miml_scene/images \\
        --labels miml_scene/labels.csv --split-json miml_scene/split.json --split test \\
        --json runs/scene/test-metrics.json

    # Top-5 labels of some images; '*' marks the labels above the model's threshold
    retdm-keras predict runs/scene/model.keras photo1.jpg photo2.png --top-k 5

Bad input (missing files, malformed annotations, mismatched labels) is reported as one line,
``retdm-keras: error: <message>``, with exit status 2; ``retdm-keras --debug ...`` shows the
traceback instead. ``python -m retdm_keras.cli`` works as well.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import tensorflow as tf

    from retdm_keras.model import RETDM

PROG = "retdm-keras"
DEFAULT_IMAGE_BACKBONE = "mobilenet_v2"
FEATURE_BACKBONE = "mlp"
EXIT_USAGE = 2


class CLIError(Exception):
    """Bad command-line input; printed as a one-line error with exit status 2."""


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_atomic(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then move it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}"
    )
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (NaN/inf become ``null``)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(_jsonable(obj), fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())

    _write_atomic(path, write)


def _save_model(model: RETDM, path: str) -> None:
    """``model.save(path)`` atomically (the temporary file keeps the ``.keras`` suffix)."""
    _write_atomic(path, lambda tmp: model.save(tmp), suffix=".keras")


def _first_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _is_download_failure(err: BaseException) -> bool:
    """Whether ``err`` says the ImageNet weights could not be fetched (not a config error)."""
    import urllib.error

    if isinstance(err, urllib.error.URLError | ConnectionError | TimeoutError):
        return True
    text = str(err)
    # keras.utils.get_file wraps network errors in a bare Exception with this text, and
    # raises ValueError when a download does not match its hash.
    return "URL fetch failure" in text or "Incomplete or corrupted file" in text


def _require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise CLIError(f"{what} not found: {path}")
    return path


def _model_threshold(model: RETDM, override: float | None = None) -> float | list[float]:
    """The decision threshold: ``override``, else the model's ``thresholds``, else 0.5."""
    if override is not None:
        return float(override)
    return model.decision_threshold


def _history_logs(histories: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """``{stage: [{"epoch": e, metric: value, ...} per epoch]}`` from ``fit_stages``."""
    out: dict[str, list[dict[str, float]]] = {}
    for stage, history in histories.items():
        logs = history.history
        epochs = list(getattr(history, "epoch", []))
        n = max((len(v) for v in logs.values()), default=0)
        rows = []
        for i in range(n):
            row: dict[str, float] = {"epoch": int(epochs[i]) + 1 if i < len(epochs) else i + 1}
            for key, values in logs.items():
                if i < len(values):
                    row[key] = float(values[i])
            rows.append(row)
        out[stage] = rows
    return out


def _print_metrics(title: str, results: dict[str, float]) -> None:
    from retdm_keras.metrics import format_table

    print(title)
    print(format_table(results))


def _check_label_names(
    model_names: Sequence[str] | None, num_labels: int, data_names: Sequence[str], source: str
) -> list[str]:
    """The data's label names in the model's order; raise if the two label sets differ."""
    data_names = list(data_names)
    if len(data_names) != num_labels:
        raise CLIError(
            f"the model predicts {num_labels} labels {list(model_names or [])} but {source} has "
            f"{len(data_names)} labels {data_names}"
        )
    if model_names is None:
        return data_names
    model_names = list(model_names)
    if set(model_names) != set(data_names):
        missing = [n for n in model_names if n not in data_names]
        extra = [n for n in data_names if n not in model_names]
        raise CLIError(
            f"label names of {source} do not match the model's: missing {missing}, "
            f"unexpected {extra}"
        )
    return model_names


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #
@dataclass
class _TrainData:
    """Datasets and bookkeeping for one training run."""

    train: tf.data.Dataset
    bank: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset | None
    test_labels: np.ndarray | None
    label_names: list[str]
    sizes: dict[str, int]
    input_dim: int | None = None


def _image_train_data(args: argparse.Namespace) -> _TrainData:
    """Train/val/test datasets from ``--data-dir``, ``--labels`` and ``--split-json``."""
    from retdm_keras.data import from_folder, load_split

    _require_file(args.labels, "labels CSV")
    if not os.path.isdir(args.data_dir):
        raise CLIError(f"image folder not found: {args.data_dir}")
    common = dict(image_size=args.image_size, batch_size=args.batch_size, cache=args.cache)

    def build(split: str | None, training: bool, **kwargs: Any):
        return from_folder(
            args.data_dir,
            args.labels,
            split=split,
            split_json=args.split_json if split is not None else None,
            training=training,
            **common,
            **kwargs,
        )

    val_split = test_split = None
    if args.split_json is not None:
        _require_file(args.split_json, "split file")
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
        val_split = args.val_split or ("val" if "val" in available else None)
        test_split = args.test_split or ("test" if "test" in available else None)
        train_split = args.train_split or "train"
        if train_split not in available:
            raise CLIError(
                f"split {train_split!r} is not in {args.split_json}; "
                f"available: {sorted(available)} (choose one with --train-split)"
            )
    else:
        if args.val_split or args.test_split or args.train_split:
            raise CLIError("--train-split/--val-split/--test-split need --split-json")
        train_split = None

    train_ds, train_files = build(train_split, True, seed=args.seed)
    bank_ds, _ = build(train_split, False, shuffle=False)
    sizes = {"train": len(train_files)}
    val_ds = test_ds = test_labels = None
    if val_split is not None:
        val_ds, val_files = build(val_split, False)
        sizes["val"] = len(val_files)
    if test_split is not None:
        test_ds, test_files = build(test_split, False)
        test_labels = test_files.labels
        sizes["test"] = len(test_files)
    return _TrainData(
        train_ds, bank_ds, val_ds, test_ds, test_labels, list(train_files.label_names), sizes
    )


def _load_feature_set(path: str, labels_xml: str | None, num_labels: int | None):
    from retdm_keras.data import load_arff

    _require_file(path, "ARFF file")
    if labels_xml is not None:
        _require_file(labels_xml, "labels XML")
    return load_arff(path, labels_xml=labels_xml, num_labels=num_labels)


def _split_off_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train rows, val rows) with ``round(fraction * n)`` rows held out."""
    import numpy as np

    if not 0.0 < fraction < 1.0:
        raise CLIError(f"--val-fraction must be in (0, 1), got {fraction}")
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise CLIError(f"--val-fraction {fraction} of {n} samples leaves no train or no val rows")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _feature_train_data(args: argparse.Namespace) -> _TrainData:
    """Train/val/test datasets from ``--arff-train`` / ``--arff-test`` (MULAN ARFF)."""
    from retdm_keras.data import feature_dataset

    train = _load_feature_set(args.arff_train, args.labels_xml, args.num_labels)
    features, labels = train.features, train.labels
    val_ds = None
    sizes: dict[str, int] = {}
    if args.val_fraction is not None:
        train_rows, val_rows = _split_off_validation(len(train), args.val_fraction, args.seed)
        val_ds = feature_dataset(
            features[val_rows], labels[val_rows], batch_size=args.batch_size, training=False
        )
        sizes["val"] = len(val_rows)
        features, labels = features[train_rows], labels[train_rows]
    sizes = {"train": len(features), **sizes}
    train_ds = feature_dataset(
        features, labels, batch_size=args.batch_size, training=True, seed=args.seed
    )
    bank_ds = feature_dataset(features, labels, batch_size=args.batch_size, training=False)
    test_ds = test_labels = None
    if args.arff_test is not None:
        test = _load_feature_set(args.arff_test, args.labels_xml, args.num_labels)
        if test.label_names != train.label_names:
            raise CLIError(
                f"{args.arff_test} has labels {test.label_names} but {args.arff_train} has "
                f"{train.label_names}"
            )
        if test.num_features != train.num_features:
            raise CLIError(
                f"{args.arff_test} has {test.num_features} features but {args.arff_train} has "
                f"{train.num_features}"
            )
        test_ds = feature_dataset(
            test.features, test.labels, batch_size=args.batch_size, training=False
        )
        test_labels = test.labels
        sizes["test"] = len(test)
    return _TrainData(
        train_ds,
        bank_ds,
        val_ds,
        test_ds,
        test_labels,
        list(train.label_names),
        sizes,
        input_dim=train.num_features,
    )


# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #
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
    from retdm_keras.model import RETDM

    feature_mode = input_dim is not None
    backbone = args.backbone or (FEATURE_BACKBONE if feature_mode else DEFAULT_IMAGE_BACKBONE)
    if feature_mode and backbone != FEATURE_BACKBONE:
        raise CLIError(f"ARFF feature vectors need --backbone {FEATURE_BACKBONE}, got {backbone!r}")
    if not feature_mode and backbone == FEATURE_BACKBONE:
        raise CLIError(f"--backbone {FEATURE_BACKBONE} is for ARFF feature vectors (--arff-train)")
    weights = _resolve_weights(args, feature_mode)
    kwargs = dict(
        num_labels=len(label_names),
        backbone=backbone,
        image_size=args.image_size,
        embed_dim=args.embed_dim,
        num_neighbors=args.num_neighbors,
        lam=args.lam,
        mu=args.mu,
        alpha=args.alpha,
        margin=args.margin,
        distance=args.distance,
        neighbor_images=args.neighbor_images,
        backbone_width=args.backbone_width,
        dropout=args.dropout,
        input_dim=input_dim,
        label_names=list(label_names),
    )
    try:
        return RETDM(weights=weights, **kwargs), weights
    except Exception as err:
        if weights != "imagenet" or not _is_download_failure(err):
            raise
        message = f"training from scratch (ImageNet weights unavailable: {_first_line(err)})"
        (log or (lambda text: print(f"{PROG}: warning: {text}", file=sys.stderr)))(message)
        return RETDM(weights=None, **kwargs), None


def load_model(path: str) -> RETDM:
    """Load a saved ``RETDM`` (``.keras`` file) without its optimizer state."""
    import keras

    import retdm_keras  # noqa: F401  (registers the serializable classes)
    from retdm_keras.model import RETDM

    _require_file(path, "model file")
    model = keras.models.load_model(path, compile=False)
    if not isinstance(model, RETDM):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a RETDM model")
    return model


def _scores(model: RETDM, dataset: tf.data.Dataset, verbose: int = 0) -> np.ndarray:
    return model.predict(dataset, verbose=verbose)


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #
def cmd_train(args: argparse.Namespace) -> int:
    """``retdm-keras train``: fit the three stages, save the model and its records."""
    feature_mode = args.arff_train is not None
    if feature_mode:
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
    else:
        if args.data_dir is None or args.labels is None:
            raise CLIError("train needs --data-dir and --labels (or --arff-train for ARFF)")
        arff_only = [
            opt
            for opt, value in (
                ("--arff-test", args.arff_test),
                ("--labels-xml", args.labels_xml),
                ("--num-labels", args.num_labels),
                ("--val-fraction", args.val_fraction),
            )
            if value is not None
        ]
        if arff_only:
            raise CLIError(f"{', '.join(arff_only)} only apply with --arff-train")
    if len(args.epochs) != 3 or len(args.learning_rates) != 3:
        raise CLIError("--epochs and --learning-rates take three values (one per stage)")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")

    import keras

    from retdm_keras.metrics import evaluate
    from retdm_keras.training import fit_stages

    keras.utils.set_random_seed(args.seed)
    data = _feature_train_data(args) if feature_mode else _image_train_data(args)
    os.makedirs(args.out, exist_ok=True)
    model, weights_used = build_model(args, data.label_names, input_dim=data.input_dim)
    sizes = ", ".join(f"{k} {v}" for k, v in data.sizes.items())
    print(f"{PROG}: {len(data.label_names)} labels; samples: {sizes}; backbone {model.backbone}")

    config = {k: v for k, v in vars(args).items() if k != "func"}
    config.update(weights_used=weights_used, label_names=data.label_names, sizes=data.sizes)
    if data.input_dim is not None:
        config["input_dim"] = data.input_dim
    write_json(os.path.join(args.out, "train_config.json"), config)

    histories = fit_stages(
        model,
        data.train,
        data.val,
        epochs=tuple(args.epochs),
        learning_rates=tuple(args.learning_rates),
        bank_data=data.bank,
        verbose=args.verbose,
    )
    model_path = os.path.join(args.out, "model.keras")
    _save_model(model, model_path)
    write_json(os.path.join(args.out, "labels.json"), data.label_names)
    write_json(os.path.join(args.out, "history.json"), _history_logs(histories))
    print(f"{PROG}: saved {model_path}")

    if data.test is not None:
        scores = _scores(model, data.test, verbose=args.verbose)
        results = evaluate(data.test_labels, scores, _model_threshold(model))
        _print_metrics(f"test ({len(data.test_labels)} samples):", results)
        write_json(os.path.join(args.out, "metrics.json"), results)
    return 0


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

    from retdm_keras.data import feature_dataset, from_folder, read_labels_csv
    from retdm_keras.metrics import evaluate

    model = load_model(args.model)
    is_mlp = model.backbone == FEATURE_BACKBONE
    if image_mode and is_mlp:
        raise CLIError(f"{args.model} takes feature vectors (backbone 'mlp'): use --arff")
    if not image_mode and not is_mlp:
        raise CLIError(f"{args.model} takes images (backbone {model.backbone!r}): use --data-dir")

    if image_mode:
        _require_file(args.labels, "labels CSV")
        names = _check_label_names(
            model.label_names,
            model.num_labels,
            read_labels_csv(args.labels).label_names,
            args.labels,
        )
        split = None
        if args.split_json is not None:
            _require_file(args.split_json, "split file")
            split = args.split or "test"
        dataset, files = from_folder(
            args.data_dir,
            args.labels,
            split=split,
            split_json=args.split_json,
            label_names=names,
            image_size=tuple(model.image_embedder.image_size),
            batch_size=args.batch_size,
            training=False,
        )
        labels = files.labels
        title = f"{split or 'all rows'} of {args.labels} ({len(files)} samples):"
    else:
        feature_set = _load_feature_set(args.arff, args.labels_xml, args.num_labels)
        names = _check_label_names(
            model.label_names, model.num_labels, feature_set.label_names, args.arff
        )
        expected = int(model.image_embedder.input_dim)
        if feature_set.num_features != expected:
            raise CLIError(
                f"{args.arff} has {feature_set.num_features} features but the model expects "
                f"{expected}"
            )
        columns = [feature_set.label_names.index(n) for n in names]
        labels = feature_set.labels[:, columns]
        dataset = feature_dataset(
            feature_set.features, labels, batch_size=args.batch_size, training=False
        )
        title = f"{args.arff} ({len(feature_set)} samples):"

    results = evaluate(labels, _scores(model, dataset), _model_threshold(model, args.threshold))
    _print_metrics(title, results)
    if args.json is not None:
        write_json(args.json, results)
    return 0


def _read_image(path: str, image_size: tuple[int, int]) -> np.ndarray:
    """One image file, decoded and resized exactly as the evaluation pipeline does."""
    import tensorflow as tf

    from retdm_keras.data import eval_transform
    from retdm_keras.data.folder_csv import decode_image_file

    if not os.path.isfile(path):
        raise CLIError(f"image file not found: {path}")
    try:
        image = decode_image_file(tf.constant(path))
    except (tf.errors.OpError, ValueError) as err:
        raise CLIError(f"cannot decode image {path}: {_first_line(err)}") from err
    return eval_transform(image, image_size).numpy()


def cmd_predict(args: argparse.Namespace) -> int:
    """``retdm-keras predict``: top-k labels with probabilities for each image."""
    if args.top_k < 1:
        raise CLIError(f"--top-k must be >= 1, got {args.top_k}")
    import numpy as np

    model = load_model(args.model)
    if model.backbone == FEATURE_BACKBONE:
        raise CLIError(f"{args.model} takes feature vectors (backbone 'mlp'), not images")
    size = tuple(model.image_embedder.image_size)
    images = np.stack([_read_image(path, size) for path in args.images])
    probabilities = model.predict(images, batch_size=args.batch_size, verbose=0)
    threshold = np.broadcast_to(
        np.asarray(_model_threshold(model, args.threshold), np.float32), (model.num_labels,)
    )
    names = model.label_names or [str(j) for j in range(model.num_labels)]
    width = max(10, *(len(n) for n in names))
    k = min(args.top_k, model.num_labels)
    for path, row in zip(args.images, probabilities, strict=True):
        print(path)
        for j in np.argsort(-row, kind="stable")[:k]:
            mark = " *" if row[j] >= threshold[j] else ""
            print(f"  {names[j]:<{width}} {row[j]:.3f}{mark}")
    return 0


# --------------------------------------------------------------------------- #
# Parser and entry point
# --------------------------------------------------------------------------- #
class _DefaultsFormatter(argparse.HelpFormatter):
    """Help formatter that appends ``(default: ...)`` to options that have a real default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.option_strings
            and action.default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a RETDM model (three stages) and save it",
        description="Train RETDM on an image folder + CSV, or on MULAN ARFF feature vectors.",
        formatter_class=_DefaultsFormatter,
    )
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

    model = p.add_argument_group("model")
    model.add_argument(
        "--backbone",
        help=f"image backbone (default: {DEFAULT_IMAGE_BACKBONE}; 'mlp' for ARFF)",
    )
    model.add_argument("--image-size", type=int, default=224, help="input image side")
    model.add_argument(
        "--weights",
        help="'imagenet', 'none' or a weights file (default: imagenet for images)",
    )
    model.add_argument("--backbone-width", type=float, help="MobileNet width multiplier")
    model.add_argument("--embed-dim", type=int, default=512, help="embedding size")
    model.add_argument("--num-neighbors", type=int, default=10, help="K neighbour label sets")
    model.add_argument("--lam", type=float, default=1.0, help="weight of the metric loss")
    model.add_argument("--mu", type=float, default=1.0, help="weight of the reconstruction loss")
    model.add_argument("--alpha", type=float, default=1.0, help="weight of the second way")
    model.add_argument("--margin", type=float, default=0.0, help="metric-loss margin")
    model.add_argument("--distance", choices=("sqeuclidean", "euclidean"), default="sqeuclidean")
    model.add_argument("--neighbor-images", choices=("memory_bank", "exact"), default="memory_bank")
    model.add_argument("--dropout", type=float, default=0.0, help="dropout before projection")

    fit = p.add_argument_group("training")
    fit.add_argument(
        "--epochs",
        type=int,
        nargs=3,
        default=[10, 5, 10],
        metavar=("E1", "E2", "E3"),
        help="epochs of the classifier, metric and joint stages",
    )
    fit.add_argument(
        "--learning-rates",
        type=float,
        nargs=3,
        default=[0.01, 0.01, 0.001],
        metavar=("L1", "L2", "L3"),
        help="initial learning rate per stage",
    )
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument("--seed", type=int, default=0, help="random seed")
    fit.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras verbosity")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_train)


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compute the 12 multi-label metrics of a saved model",
        description="Evaluate a saved model on an image split or an ARFF file.",
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("model", help="saved model (.keras)")
    p.add_argument("--data-dir", help="image folder")
    p.add_argument("--labels", help="annotation CSV")
    p.add_argument("--split-json", help="split file")
    p.add_argument("--split", help="split to evaluate (default: test)")
    p.add_argument("--arff", help="ARFF file (for 'mlp' models)")
    p.add_argument("--labels-xml", help="MULAN labels XML for --arff")
    p.add_argument("--num-labels", type=int, help="without XML: the last N attributes are labels")
    p.add_argument(
        "--threshold", type=float, help="decision threshold (default: the model's, else 0.5)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="print the top-k labels of images",
        description="Print each image's top-k labels; '*' marks labels above the threshold.",
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("model", help="saved model (.keras)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG/PNG/GIF/BMP)")
    p.add_argument("--top-k", type=int, default=5, help="labels shown per image")
    p.add_argument(
        "--threshold", type=float, help="threshold for '*' (default: the model's, else 0.5)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.set_defaults(func=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    """The ``retdm-keras`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="RETDM multi-label image classification (Keras 3).",
        epilog="Run 'retdm-keras COMMAND --help' for a command's options.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict}")
    sub.required = True
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_predict_parser(sub)
    return parser


def _is_input_error(err: BaseException) -> bool:
    """Errors caused by bad input files or options, reported without a traceback."""
    if isinstance(err, CLIError | FileNotFoundError | ValueError):
        return True
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return errors is not None and isinstance(
        err, errors.InvalidArgumentError | errors.NotFoundError
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed by argparse
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug or not _is_input_error(err):
            raise
        print(f"{PROG}: error: {_first_line(err)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
