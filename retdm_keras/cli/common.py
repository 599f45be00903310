"""What the commands share: constants, the error type, file output, the decision rule,
metrics printing, model loading and the help formatter."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from retdm_keras import files

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


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (NaN/inf become ``null``)."""
    files.write_json(path, obj)


def save_model(model: RETDM, path: str) -> None:
    """``model.save(path)`` atomically (the temporary file keeps the ``.keras`` suffix)."""
    files.atomic_write(path, model.save, suffix=".keras")


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options, as recorded in ``train_config.json`` / ``tune_config.json``."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "written")}


def write_run_config(args: argparse.Namespace, path: str, data: Any, weights: Any) -> None:
    """Write the options plus what the data and weights turned out to be."""
    config = _run_config(args)
    config.update(weights_used=weights, label_names=data.label_names, sizes=data.sizes)
    if data.input_dim is not None:
        config["input_dim"] = data.input_dim
    write_json(path, config)


def reject_arff_only_options(args: argparse.Namespace) -> None:
    """Options that only mean something with ``--arff-train`` are an error without it."""
    given = [
        opt
        for opt, value in (
            ("--arff-test", args.arff_test),
            ("--labels-xml", args.labels_xml),
            ("--num-labels", args.num_labels),
        )
        if value is not None
    ]
    if given:
        raise CLIError(f"{', '.join(given)} only apply with --arff-train")


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def is_download_failure(err: BaseException) -> bool:
    """Whether ``err`` says the ImageNet weights could not be fetched (not a config error)."""
    import urllib.error

    if isinstance(err, urllib.error.URLError | ConnectionError | TimeoutError):
        return True
    text = str(err)
    # keras.utils.get_file wraps network errors in a bare Exception with this text, and
    # raises ValueError when a download does not match its hash.
    return "URL fetch failure" in text or "Incomplete or corrupted file" in text


def require_file(path: str, what: str) -> str:
    """``path`` when it is a file; else a ``CLIError`` naming ``what``."""
    if not os.path.isfile(path):
        raise CLIError(f"{what} not found: {path}")
    return path


def check_val_fraction(fraction: float) -> None:
    """Raise a ``CLIError`` unless ``--val-fraction`` lies strictly between 0 and 1."""
    if not 0.0 < fraction < 1.0:
        raise CLIError(f"--val-fraction must be in (0, 1), got {fraction}")


def _model_threshold(model: RETDM, override: float | None = None) -> float | list[float]:
    """The decision threshold: ``override``, else the model's ``thresholds``, else 0.5."""
    if override is not None:
        return float(override)
    return model.decision_threshold


def decisions(model: RETDM, scores: np.ndarray, override: float | None = None) -> np.ndarray:
    """Boolean ``(N, C)``: the labels predicted from ``scores`` by the threshold ``override``,
    else by the model's ``top_k`` rule, else by its thresholds (0.5 without)."""
    import numpy as np

    if override is None and model.top_k:
        from retdm_keras.thresholds import Thresholds

        return Thresholds("top_k", k=model.top_k).apply(scores).astype(bool)
    threshold = np.asarray(_model_threshold(model, override), dtype=np.float32)
    return np.asarray(scores) >= threshold


def evaluate_model(
    model: RETDM, labels: np.ndarray, scores: np.ndarray, override: float | None = None
) -> dict[str, float]:
    """``metrics.evaluate`` under the model's decision rule (see ``decisions``)."""
    from retdm_keras.metrics import evaluate

    if override is not None or not model.top_k:
        return evaluate(labels, scores, _model_threshold(model, override))
    from retdm_keras.thresholds import THRESHOLD_METRICS

    results = evaluate(labels, scores)
    # 0/1 scores that the default 0.5 threshold turns back into the top-k decisions
    decided = evaluate(labels, decisions(model, scores).astype("float32"))
    results.update({name: decided[name] for name in THRESHOLD_METRICS})
    return results


def print_metrics(title: str, results: dict[str, float]) -> None:
    """Print ``title``, then the metrics ``results`` as a table."""
    from retdm_keras.metrics import format_table

    print(title)
    print(format_table(results))


def check_label_names(
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


MODEL_HELP = "a saved model (.keras file), a zoo entry folder, or a zoo name (e.g. scene)"


def load_model(path: str) -> RETDM:
    """A ``RETDM`` from a ``.keras`` file (without its optimizer state), a zoo entry folder,
    or a zoo name (``scene``, ``scene@1``: :func:`retdm_keras.zoo.load`)."""
    import keras

    import retdm_keras
    from retdm_keras.model import RETDM

    retdm_keras.import_all()  # registers the serializable classes (also in lazy mode)

    if os.path.isdir(path) or _is_zoo_name(path):
        from retdm_keras import zoo

        try:
            return zoo.load(path)
        except zoo.ZooError as err:
            raise CLIError(str(err)) from err
    require_file(path, "model file")
    model = keras.models.load_model(path, compile=False)
    if not isinstance(model, RETDM):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a RETDM model")
    return model


def _is_zoo_name(text: str) -> bool:
    """A name of the zoo rather than a file: no folder part, no extension, not a file here."""
    return (
        not os.path.exists(text)
        and os.sep not in text
        and "/" not in text
        and not os.path.splitext(text.partition("@")[0])[1]
    )


def predict_scores(model: RETDM, dataset: tf.data.Dataset, verbose: int = 0) -> np.ndarray:
    """The model's ``(N, C)`` scores on ``dataset`` (``model.predict``)."""
    return model.predict(dataset, verbose=verbose)


class DefaultsFormatter(argparse.HelpFormatter):
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


BACKBONE_RUNTIMES = ("auto", "onnx", "keras")  # retdm_keras.backbone_runtime.RUNTIMES


def add_backbone_runtime_argument(p: argparse.ArgumentParser) -> None:
    """``--backbone-runtime``: which runtime runs a fixed image backbone."""
    p.add_argument(
        "--backbone-runtime",
        choices=BACKBONE_RUNTIMES,
        help="runtime of a frozen or pretrained image backbone (feature extraction, "
        "predictions on images): 'auto' ONNX Runtime on a CPU, else Keras; 'keras' "
        "always Keras (default: $RETDM_BACKBONE_RUNTIME, else auto)",
    )


@contextlib.contextmanager
def backbone_runtime_option(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs, ``--backbone-runtime`` is the process's default
    (``RETDM_BACKBONE_RUNTIME``); the variable is restored after."""
    runtime = getattr(args, "backbone_runtime", None)
    if runtime is None:
        yield
        return
    from retdm_keras.backbone_runtime import ENVIRONMENT_VARIABLE

    previous = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = runtime
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENVIRONMENT_VARIABLE, None)
        else:
            os.environ[ENVIRONMENT_VARIABLE] = previous
