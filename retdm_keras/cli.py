"""Command-line interface: ``retdm-keras train|tune|evaluate|calibrate|predict|export``.

A thin shell over the Python API (:class:`retdm_keras.RETDM`, :func:`retdm_keras.fit_stages`,
:mod:`retdm_keras.data`, :mod:`retdm_keras.metrics`, :mod:`retdm_keras.tuning`,
:mod:`retdm_keras.thresholds`, :mod:`retdm_keras.export`); it adds argument parsing, file
output and error reporting, no learning logic of its own.

Examples::

    # Train on an image folder + one-hot CSV with a train/val/test split file; writes
    # model.keras, labels.json, history.json, train_config.json (+ metrics.json with a test split)
    retdm-keras train --data-dir miml_scene/images --labels miml_scene/labels.csv \\
        --split-json miml_scene/split.json --out runs/scene --epochs 10 5 10

    # Train on MULAN ARFF feature vectors (backbone "mlp"), 10 % of train held out for validation
    retdm-keras train --arff-train scene-train.arff --arff-test scene-test.arff \\
        --labels-xml scene.xml --val-fraction 0.1 --out runs/scene-arff

    # Search lam and mu (and the margin) with KerasTuner, scored on the val split; writes
    # best_recipe.json and the lam/mu heatmap lam_mu.png (validation data is required)
    retdm-keras tune --data-dir miml_scene/images --labels miml_scene/labels.csv \\
        --split-json miml_scene/split.json --tuner bayesian --max-trials 20 \\
        --lam-range 0.01 10 --mu-range 0.01 10 --search margin --out runs/scene-tune

    # The 12 metrics of a saved model on a split (or on an ARFF file with --arff)
    retdm-keras evaluate runs/scene/model.keras --data-dir miml_scene/images \\
        --labels miml_scene/labels.csv --split-json miml_scene/split.json --split test \\
        --json runs/scene/test-metrics.json

    # Per-label thresholds chosen on the val split, compared with 0.5 on the test split, and
    # stored in a copy of the model (predict/evaluate/export then use them)
    retdm-keras calibrate runs/scene/model.keras --data-dir miml_scene/images \\
        --labels miml_scene/labels.csv --split-json miml_scene/split.json \\
        --method per_class_f1 --save runs/scene/model-calibrated.keras

    # Top-5 labels of some images; '*' marks the labels the model predicts
    retdm-keras predict runs/scene/model.keras photo1.jpg photo2.png --top-k 5

    # ONNX + SavedModel + TFLite with label metadata, and their latency next to Keras'
    retdm-keras export runs/scene/model.keras --format all --out runs/scene/export --benchmark

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
# Kept here (not imported) so that building the parser, e.g. for --help, stays light; the
# tests check them against retdm_keras.thresholds.METHODS, retdm_keras.export.FORMATS and
# retdm_keras.tuning.DEFAULT_CHOICES.
CALIBRATION_METHODS = ("per_class_f1", "global_f1", "top_k")
EXPORT_SUFFIXES = {"onnx": ".onnx", "saved_model": "_saved_model", "tflite": ".tflite"}
TUNERS = ("random", "bayesian", "hyperband")
SEARCHABLE = ("alpha", "margin", "num_neighbors", "embed_dim", "learning_rates")
TUNER_PROJECT = "search"
DEFAULT_MAX_TRIALS = 10
TRAINING_LOGS = ("loss", "cls_loss", "metric_loss", "rec_loss", "mAP", "O-F1")
"""What every training epoch logs; with ``val_`` the validation data's values."""
OBJECTIVE_BASES = (
    *TRAINING_LOGS[:4],
    "C-P",
    "C-R",
    "C-F1",
    "O-P",
    "O-R",
    "O-F1",
    "hamming_loss",
    "ranking_loss",
    "one_error",
    "coverage",
    "average_precision",
    "mAP",
)
"""What ``--objective`` accepts after ``val_``: the losses and ``metrics.METRIC_NAMES``."""


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


def _decisions(model: RETDM, scores: np.ndarray, override: float | None = None) -> np.ndarray:
    """Boolean ``(N, C)``: the labels predicted from ``scores`` by the threshold ``override``,
    else by the model's ``top_k`` rule, else by its thresholds (0.5 without)."""
    import numpy as np

    if override is None and model.top_k:
        from retdm_keras.thresholds import Thresholds

        return Thresholds("top_k", k=model.top_k).apply(scores).astype(bool)
    threshold = np.asarray(_model_threshold(model, override), dtype=np.float32)
    return np.asarray(scores) >= threshold


def _evaluate_model(
    model: RETDM, labels: np.ndarray, scores: np.ndarray, override: float | None = None
) -> dict[str, float]:
    """``metrics.evaluate`` under the model's decision rule (see ``_decisions``)."""
    from retdm_keras.metrics import evaluate

    if override is not None or not model.top_k:
        return evaluate(labels, scores, _model_threshold(model, override))
    from retdm_keras.thresholds import THRESHOLD_METRICS

    results = evaluate(labels, scores)
    # 0/1 scores that the default 0.5 threshold turns back into the top-k decisions
    decided = evaluate(labels, _decisions(model, scores).astype("float32"))
    results.update({name: decided[name] for name in THRESHOLD_METRICS})
    return results


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


def _train_data(args: argparse.Namespace) -> _TrainData:
    """The training data the data options of ``train`` / ``tune`` describe.

    The only place those commands read the data options (``--data-dir``, ``--labels``,
    ``--split-json``, ``--*-split``, ``--cache``, ``--image-size``, ``--arff-*``,
    ``--labels-xml``, ``--num-labels``, ``--val-fraction``, ``--batch-size``, ``--seed``): a
    recipe file can fill those options, or replace this function, without touching the
    commands.
    """
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
        raise CLIError(f"{command} needs --data-dir and --labels (or --arff-train for ARFF)")
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
    return _image_train_data(args)


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

    _require_file(args.labels, "labels CSV")
    names = _check_label_names(
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
    names = _check_label_names(model.label_names, model.num_labels, feature_set.label_names, path)
    expected = int(model.image_embedder.input_dim)
    if feature_set.num_features != expected:
        raise CLIError(
            f"{path} has {feature_set.num_features} features but the model expects {expected}"
        )
    columns = [feature_set.label_names.index(n) for n in names]
    return feature_set.features, feature_set.labels[:, columns]


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
def _check_fit_options(args: argparse.Namespace) -> None:
    if len(args.epochs) != 3 or len(args.learning_rates) != 3:
        raise CLIError("--epochs and --learning-rates take three values (one per stage)")
    if min(args.epochs) < 0:
        raise CLIError(f"--epochs must be >= 0, got {args.epochs}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")


def _describe_sizes(data: _TrainData) -> str:
    return ", ".join(f"{k} {v}" for k, v in data.sizes.items())


def cmd_train(args: argparse.Namespace) -> int:
    """``retdm-keras train``: fit the three stages, save the model and its records."""
    _check_fit_options(args)

    import keras
    import tensorflow as tf

    from retdm_keras.distributed import fit_stages_multiworker, is_chief, make_strategy
    from retdm_keras.training import fit_stages

    keras.utils.set_random_seed(args.seed)
    strategy = make_strategy(getattr(args, "strategy", "default"))
    data = _train_data(args)
    os.makedirs(args.out, exist_ok=True)
    with strategy.scope():  # weights, optimiser slots and memory bank live on every replica
        model, weights_used = build_model(args, data.label_names, input_dim=data.input_dim)
    print(
        f"{PROG}: {len(data.label_names)} labels; samples: {_describe_sizes(data)}; "
        f"backbone {model.backbone}"
    )

    config = {k: v for k, v in vars(args).items() if k != "func"}
    config.update(weights_used=weights_used, label_names=data.label_names, sizes=data.sizes)
    if data.input_dim is not None:
        config["input_dim"] = data.input_dim
    write_json(os.path.join(args.out, "train_config.json"), config)

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # model.fit is broken under MultiWorkerMirroredStrategy in Keras 3: custom loop.
        history_rows = fit_stages_multiworker(
            model,
            data.train,
            epochs=tuple(args.epochs),
            learning_rates=tuple(args.learning_rates),
            bank_data=data.bank,
            checkpoint_dir=os.path.join(args.out, "checkpoints"),
            verbose=args.verbose,
        )
        if not is_chief(strategy):
            return 0  # only the chief writes the model and the records
    else:
        histories = fit_stages(
            model,
            data.train,
            data.val,
            epochs=tuple(args.epochs),
            learning_rates=tuple(args.learning_rates),
            bank_data=data.bank,
            verbose=args.verbose,
        )
        history_rows = _history_logs(histories)
    model_path = os.path.join(args.out, "model.keras")
    _save_model(model, model_path)
    write_json(os.path.join(args.out, "labels.json"), data.label_names)
    write_json(os.path.join(args.out, "history.json"), history_rows)
    print(f"{PROG}: saved {model_path}")

    if data.test is not None:
        scores = _scores(model, data.test, verbose=args.verbose)
        results = _evaluate_model(model, data.test_labels, scores)
        _print_metrics(f"test ({len(data.test_labels)} samples):", results)
        write_json(os.path.join(args.out, "metrics.json"), results)
    return 0


def _make_tuner(args: argparse.Namespace, hypermodel: Any, objective: Any) -> Any:
    import keras_tuner as kt

    common = dict(
        objective=objective,
        seed=args.seed,
        directory=args.out,
        project_name=TUNER_PROJECT,
        overwrite=args.overwrite,
    )
    if args.tuner == "hyperband":
        max_epochs = args.max_epochs if args.max_epochs is not None else args.epochs[2]
        return kt.Hyperband(hypermodel, max_epochs=max_epochs, **common)
    tuner_class = kt.RandomSearch if args.tuner == "random" else kt.BayesianOptimization
    max_trials = args.max_trials if args.max_trials is not None else DEFAULT_MAX_TRIALS
    return tuner_class(hypermodel, max_trials=max_trials, **common)


def cmd_tune(args: argparse.Namespace) -> int:
    """``retdm-keras tune``: KerasTuner search over lam/mu (and more), best recipe + heatmap."""
    _check_fit_options(args)
    if args.tuner == "hyperband":
        if args.max_trials is not None:
            raise CLIError("--max-trials does not apply to --tuner hyperband (use --max-epochs)")
        max_epochs = args.max_epochs if args.max_epochs is not None else args.epochs[2]
        if max_epochs < 1:
            raise CLIError(f"--max-epochs must be >= 1, got {max_epochs}")
    else:
        if args.max_epochs is not None:
            raise CLIError("--max-epochs only applies to --tuner hyperband (use --max-trials)")
        if args.max_trials is not None and args.max_trials < 1:
            raise CLIError(f"--max-trials must be >= 1, got {args.max_trials}")
    for option, (low, high) in (("--lam-range", args.lam_range), ("--mu-range", args.mu_range)):
        if not 0 < low <= high:
            raise CLIError(f"{option} needs 0 < LO <= HI, got {low} {high}")
    if args.objective.removeprefix("val_") not in OBJECTIVE_BASES or (
        not args.objective.startswith("val_") and args.objective not in TRAINING_LOGS
    ):
        raise CLIError(
            f"--objective {args.objective!r} is not logged; use val_<name> with <name> one of "
            f"{list(OBJECTIVE_BASES)}, or one of {list(TRAINING_LOGS)} (training data)"
        )
    if args.stage1_weights is not None:
        _require_file(args.stage1_weights, "stage-1 weights file")
    search = set(args.search or ())

    import keras

    from retdm_keras.tuning import RETDMHyperModel, best_recipe, heatmap, retdm_objective

    keras.utils.set_random_seed(args.seed)
    data = _train_data(args)
    if data.val is None:
        how = (
            "hold out training rows with --val-fraction"
            if data.input_dim is not None
            else "a 'val' split in --split-json, or name one with --val-split"
        )
        raise CLIError(f"tune scores every trial on validation data: {how}")
    os.makedirs(args.out, exist_ok=True)
    kwargs, weights = _model_kwargs(args, data.label_names, data.input_dim)
    if weights == "imagenet":  # fetch the weights once; from scratch if they cannot be had
        _, weights = _build_with_fallback({**kwargs, "num_labels": len(data.label_names)}, weights)
    hypermodel = RETDMHyperModel(
        len(data.label_names),
        train_data=data.train,
        val_data=data.val,
        model_kwargs={**kwargs, "weights": weights},
        lam_range=tuple(args.lam_range),
        mu_range=tuple(args.mu_range),
        search_alpha="alpha" in search,
        search_margin="margin" in search,
        search_num_neighbors="num_neighbors" in search,
        search_embed_dim="embed_dim" in search,
        search_learning_rates="learning_rates" in search,
        epochs=tuple(args.epochs),
        learning_rates=tuple(args.learning_rates),
        stage1_weights=args.stage1_weights,
        bank_data=data.bank,
    )
    tuner = _make_tuner(args, hypermodel, retdm_objective(args.objective))
    print(
        f"{PROG}: {len(data.label_names)} labels; samples: {_describe_sizes(data)}; "
        f"backbone {kwargs['backbone']}; {args.tuner} search on {args.objective}"
    )
    config = {k: v for k, v in vars(args).items() if k != "func"}
    config.update(weights_used=weights, label_names=data.label_names, sizes=data.sizes)
    if data.input_dim is not None:
        config["input_dim"] = data.input_dim
    write_json(os.path.join(args.out, "tune_config.json"), config)

    tuner.search(verbose=args.verbose)

    recipe = best_recipe(tuner)
    recipe_path = os.path.join(args.out, "best_recipe.json")
    write_json(recipe_path, recipe)
    plot_path = heatmap(tuner, os.path.join(args.out, "lam_mu.png"))
    values = ", ".join(
        f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in recipe["hyperparameters"].items()
    )
    print(f"{PROG}: best trial {recipe['trial_id']}: {recipe['objective']} {recipe['score']:.4f}")
    print(f"{PROG}: {values}")
    print(f"{PROG}: saved {recipe_path} and {plot_path}")
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

    from retdm_keras.data import feature_dataset

    model = load_model(args.model)
    _check_input_kind(model, args.model, image_mode, "--arff")
    if image_mode:
        split = None
        if args.split_json is not None:
            _require_file(args.split_json, "split file")
            split = args.split or "test"
        dataset, labels, title = _image_eval_data(args, model, split)
    else:
        features, labels = _feature_eval_data(model, args.arff, args.labels_xml, args.num_labels)
        dataset = feature_dataset(features, labels, batch_size=args.batch_size, training=False)
        title = f"{args.arff} ({len(labels)} samples)"

    results = _evaluate_model(model, labels, _scores(model, dataset), args.threshold)
    _print_metrics(f"{title}:", results)
    if args.json is not None:
        write_json(args.json, results)
    return 0


_EvalSet = tuple["tf.data.Dataset", "np.ndarray", str]


def _calibration_data(
    args: argparse.Namespace, model: RETDM, image_mode: bool
) -> tuple[_EvalSet, _EvalSet | None]:
    """The validation set (calibration) and the optional test set (comparison)."""
    if image_mode:
        from retdm_keras.data import load_split

        _require_file(args.split_json, "split file")
        available = load_split(args.split_json)
        val_split = args.val_split or "val"
        for option, name in (("--val-split", val_split), ("--test-split", args.test_split)):
            if name is not None and name not in available:
                raise CLIError(
                    f"split {name!r} is not in {args.split_json}; available: "
                    f"{sorted(available)} (choose one with {option})"
                )
        test_split = args.test_split or ("test" if "test" in available else None)
        val = _image_eval_data(args, model, val_split)
        return val, _image_eval_data(args, model, test_split) if test_split else None

    from retdm_keras.data import feature_dataset

    def as_set(features: np.ndarray, labels: np.ndarray, title: str) -> _EvalSet:
        dataset = feature_dataset(features, labels, batch_size=args.batch_size, training=False)
        return dataset, labels, title

    features, labels = _feature_eval_data(model, args.arff_train, args.labels_xml, args.num_labels)
    _, rows = _split_off_validation(len(labels), args.val_fraction, args.seed)
    val = as_set(
        features[rows],
        labels[rows],
        f"{len(rows)} rows of {args.arff_train} held out by --val-fraction {args.val_fraction} "
        f"--seed {args.seed}",
    )
    if args.arff_test is None:
        return val, None
    features, labels = _feature_eval_data(model, args.arff_test, args.labels_xml, args.num_labels)
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
    else:
        if args.val_fraction is None:
            raise CLIError(
                "calibrate --arff-train needs --val-fraction (and the --seed used by train) to "
                "hold out the validation rows"
            )
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
    _check_input_kind(model, args.model, image_mode, "--arff-train")
    (val_ds, y_val, val_title), test = _calibration_data(args, model, image_mode)
    rule = calibrate(y_val, _scores(model, val_ds), args.method, k=args.k)
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
        table = compare_thresholds(y_test, _scores(model, test_ds), rule)
        print(f"{test_title}, 0.5 vs {rule.method}:")
        print(format_table(table))
        report["test"] = {"data": test_title, "samples": len(y_test), "metrics": table}
    if args.json is not None:
        write_json(args.json, report)
    if args.save is not None:
        apply_to_model(model, rule)
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        _save_model(model, args.save)
        print(f"{PROG}: saved {args.save} with the {rule.method} rule")
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
    predicted = _decisions(model, probabilities, args.threshold)
    names = model.label_names or [str(j) for j in range(model.num_labels)]
    width = max(10, *(len(n) for n in names))
    k = min(args.top_k, model.num_labels)
    for path, row, chosen in zip(args.images, probabilities, predicted, strict=True):
        print(path)
        for j in np.argsort(-row, kind="stable")[:k]:
            mark = " *" if chosen[j] else ""
            print(f"  {names[j]:<{width}} {row[j]:.3f}{mark}")
    return 0


def _print_latency(results: dict[str, Any]) -> None:
    print(f"median latency over {results['repeats']} runs (ms; speed-up over Keras):")
    for backend, times in results["latency_ms"].items():
        speedup = results["speedup_vs_keras"].get(backend, {})
        cells = [
            f"batch {b}: {ms:.3f}" + (f" ({speedup[b]:.1f}x)" if b in speedup else "")
            for b, ms in times.items()
        ]
        print(f"  {backend:<12} " + "; ".join(cells))


def cmd_export(args: argparse.Namespace) -> int:
    """``retdm-keras export``: ONNX / SavedModel / TFLite files of a saved model."""
    if args.opset is not None and args.format not in ("onnx", "all"):
        raise CLIError("--opset only applies to --format onnx or all")
    if args.benchmark and (min(args.batch_sizes) < 1 or args.repeats < 1):
        raise CLIError("--batch-sizes and --repeats must be >= 1")

    from retdm_keras.export import benchmark_latency, export_all, export_model

    model = load_model(args.model)
    if model.top_k:
        print(
            f"{PROG}: warning: the model predicts its top {model.top_k} labels; the exported "
            "metadata only describes thresholds",
            file=sys.stderr,
        )
    folder = os.path.dirname(os.path.abspath(args.model))
    stem = os.path.basename(args.model).removesuffix(".keras")
    options = dict(metadata=not args.no_metadata, opset=args.opset)
    if args.format == "all":
        out_folder = args.out or folder
        paths = export_all(model, out_folder, stem=stem, **options)
    else:
        default = os.path.join(folder, stem + EXPORT_SUFFIXES[args.format])
        path = export_model(model, args.out or default, args.format, **options)
        out_folder = str(path.parent)
        paths = {args.format: path}
    for fmt, path in paths.items():
        print(f"{fmt}: {path}")
    if args.benchmark:
        results = benchmark_latency(
            model, paths, batch_sizes=tuple(args.batch_sizes), repeats=args.repeats
        )
        target = os.path.join(out_folder, "latency.json")
        write_json(target, results)
        _print_latency(results)
        print(f"{PROG}: saved {target}")
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
    model.add_argument("--image-size", type=int, default=224, help="input image side")
    model.add_argument(
        "--weights",
        help="'imagenet', 'none' or a weights file (default: imagenet for images)",
    )
    model.add_argument("--backbone-width", type=float, help="MobileNet width multiplier")
    model.add_argument("--embed-dim", type=int, default=512, help="embedding size")
    model.add_argument("--num-neighbors", type=int, default=10, help="K neighbour label sets")
    if loss_weights:
        model.add_argument("--lam", type=float, default=1.0, help="weight of the metric loss")
        model.add_argument(
            "--mu", type=float, default=1.0, help="weight of the reconstruction loss"
        )
    model.add_argument("--alpha", type=float, default=1.0, help="weight of the second way")
    model.add_argument("--margin", type=float, default=0.0, help="metric-loss margin")
    model.add_argument("--distance", choices=("sqeuclidean", "euclidean"), default="sqeuclidean")
    model.add_argument("--neighbor-images", choices=("memory_bank", "exact"), default="memory_bank")
    model.add_argument("--dropout", type=float, default=0.0, help="dropout before projection")


def _add_fit_arguments(p: argparse.ArgumentParser) -> None:
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


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a RETDM model (three stages) and save it",
        description="Train RETDM on an image folder + CSV, or on MULAN ARFF feature vectors.",
        formatter_class=_DefaultsFormatter,
    )
    _add_data_arguments(p)
    _add_model_arguments(p)
    _add_fit_arguments(p)
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multiworker"),
        default="default",
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker = the cluster in "
        "TF_CONFIG (run the same command on every worker; only the chief writes --out)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_train)


def _add_tune_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search lam/mu (and more) with KerasTuner",
        description=(
            "KerasTuner search over RETDM's loss weights lam and mu (log-uniform) and, with "
            "--search, more knobs; every trial runs the three stages and is scored on the "
            "validation data (required). Writes best_recipe.json, the lam/mu heatmap "
            "lam_mu.png, tune_config.json and the tuner's trials into --out."
        ),
        formatter_class=_DefaultsFormatter,
    )
    _add_data_arguments(p)
    _add_model_arguments(p, loss_weights=False)
    _add_fit_arguments(p)
    search = p.add_argument_group("search")
    search.add_argument("--tuner", choices=TUNERS, default="bayesian", help="search strategy")
    search.add_argument(
        "--max-trials",
        type=int,
        help=f"trials of random/bayesian (default: {DEFAULT_MAX_TRIALS})",
    )
    search.add_argument(
        "--max-epochs",
        type=int,
        help="hyperband: most joint-stage epochs of a trial (default: E3 of --epochs)",
    )
    search.add_argument(
        "--objective",
        default="val_mAP",
        help="logged metric to optimise, e.g. val_mAP, val_C-F1, val_loss (minimised)",
    )
    for name, what in (("lam", "metric"), ("mu", "reconstruction")):
        search.add_argument(
            f"--{name}-range",
            type=float,
            nargs=2,
            default=[0.01, 10.0],
            metavar=("LO", "HI"),
            help=f"log-uniform range of the {what}-loss weight {name} (LO = HI: fixed)",
        )
    search.add_argument(
        "--search",
        nargs="+",
        choices=SEARCHABLE,
        metavar="KNOB",
        help=f"also search these: {', '.join(SEARCHABLE)}",
    )
    search.add_argument(
        "--stage1-weights",
        help="weights of a stage-1 model of the same architecture: trials skip stage 1",
    )
    search.add_argument(
        "--overwrite", action="store_true", help="start afresh instead of resuming in --out"
    )
    p.add_argument("--out", required=True, help="output folder (the tuner's too)")
    p.set_defaults(func=cmd_tune)


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
        "--threshold",
        type=float,
        help="decision threshold (default: the model's rule — top_k or thresholds — else 0.5)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)


def _add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="choose decision thresholds (or top-k) on validation data",
        description=(
            "Choose a decision rule on the validation data, compare it with 0.5 on the test "
            "data (if any), and with --save store it in a copy of the model."
        ),
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("model", help="saved model (.keras)")
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
    p.set_defaults(func=cmd_calibrate)


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="print the top-k labels of images",
        description="Print each image's top-k labels; '*' marks the labels the model predicts.",
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("model", help="saved model (.keras)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG/PNG/GIF/BMP)")
    p.add_argument("--top-k", type=int, default=5, help="labels shown per image")
    p.add_argument(
        "--threshold",
        type=float,
        help="threshold for '*' (default: the model's rule — top_k or thresholds — else 0.5)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.set_defaults(func=cmd_predict)


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a saved model to ONNX, SavedModel or TFLite",
        description=(
            "Export the prediction path (raw pixels in [0, 255] -> probabilities) with the "
            "label names and thresholds as metadata."
        ),
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("model", help="saved model (.keras)")
    p.add_argument(
        "--format", choices=(*EXPORT_SUFFIXES, "all"), default="onnx", help="export format"
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help=(
            "file or SavedModel folder to write; with --format all the folder for all three "
            "(default: next to MODEL, named after it)"
        ),
    )
    p.add_argument("--no-metadata", action="store_true", help="leave the metadata out")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: tf2onnx's)")
    p.add_argument(
        "--benchmark",
        action="store_true",
        help="time Keras and the exports; writes latency.json next to the output",
    )
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[1, 32],
        metavar="B",
        help="--benchmark: batch sizes to time",
    )
    p.add_argument("--repeats", type=int, default=20, help="--benchmark: timed runs per batch")
    p.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    """The ``retdm-keras`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="RETDM multi-label image classification (Keras 3).",
        epilog="Run 'retdm-keras COMMAND --help' for a command's options.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(
        dest="command", metavar="{train,tune,evaluate,calibrate,predict,export}"
    )
    sub.required = True
    _add_train_parser(sub)
    _add_tune_parser(sub)
    _add_evaluate_parser(sub)
    _add_calibrate_parser(sub)
    _add_predict_parser(sub)
    _add_export_parser(sub)
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
