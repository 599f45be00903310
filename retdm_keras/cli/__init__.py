"""Command-line interface:
``retdm-keras train|tune|evaluate|calibrate|predict|export|publish|zoo``.

A thin shell over the Python API (:class:`retdm_keras.RETDM`, :func:`retdm_keras.fit_stages`,
:mod:`retdm_keras.data`, :mod:`retdm_keras.recipes`, :mod:`retdm_keras.zoo`,
:mod:`retdm_keras.metrics`, :mod:`retdm_keras.tuning`, :mod:`retdm_keras.thresholds`,
:mod:`retdm_keras.export`); it adds argument parsing, file output and error reporting, no
learning logic of its own. The training data come from the same functions recipes use
(``recipes.image_folder_data``, ``recipes.arff_data``).

Examples::

    # Train on an image folder + one-hot CSV with a train/val/test split file; writes
    # model.keras, labels.json, history.json, train_config.json (+ metrics.json with a test split)
    retdm-keras train --data-dir miml_scene/images --labels miml_scene/labels.csv \
        --split-json miml_scene/split.json --out runs/scene --epochs 10 5 10

    # Train on MULAN ARFF feature vectors (backbone "mlp"), 10 % of train held out for validation
    retdm-keras train --arff-train scene-train.arff --arff-test scene-test.arff \
        --labels-xml scene.xml --val-fraction 0.1 --out runs/scene-arff

    # Train a recipe (data + model + schedule in one YAML file; a built-in one by its name)
    # into a zoo entry folder, record it in the registry, and list the zoo (or copy a
    # checkpoint into the cache)
    retdm-keras train --recipe scene-features --out runs/zoo/scene-features
    retdm-keras publish runs/zoo/scene-features
    retdm-keras zoo list
    retdm-keras zoo fetch scene-features

    # Search lam and mu (and the margin) with KerasTuner, scored on the val split; writes
    # best_recipe.json and the lam/mu heatmap lam_mu.png (validation data is required)
    retdm-keras tune --data-dir miml_scene/images --labels miml_scene/labels.csv \
        --split-json miml_scene/split.json --tuner bayesian --max-trials 20 \
        --lam-range 0.01 10 --mu-range 0.01 10 --search margin --out runs/scene-tune

    # The same search on a recipe's data and model, with a shorter schedule; also writes
    # best_recipe.yaml, the recipe with the best lam/mu (train it with train --recipe)
    retdm-keras tune --recipe scene --epochs 2 1 2 --out runs/scene-tune

    # The 12 metrics of a saved model on a split (or on an ARFF file with --arff)
    retdm-keras evaluate runs/scene/model.keras --data-dir miml_scene/images \
        --labels miml_scene/labels.csv --split-json miml_scene/split.json --split test \
        --json runs/scene/test-metrics.json

    # Per-label thresholds chosen on the val split, compared with 0.5 on the test split, and
    # stored in a copy of the model (predict/evaluate/export then use them)
    retdm-keras calibrate runs/scene/model.keras --data-dir miml_scene/images \
        --labels miml_scene/labels.csv --split-json miml_scene/split.json \
        --method per_class_f1 --save runs/scene/model-calibrated.keras

    # Top-5 labels of some images; '*' marks the labels the model predicts
    retdm-keras predict runs/scene/model.keras photo1.jpg photo2.png --top-k 5

    # ONNX + SavedModel + TFLite with label metadata, and their latency next to Keras'
    retdm-keras export runs/scene/model.keras --format all --out runs/scene/export --benchmark

Bad input (missing files, malformed annotations or recipes, mismatched labels, zoo hash or
registry problems, ImageNet weights a recipe needs but cannot get) is reported as one line,
``retdm-keras: error: <message>``, with exit status 2; ``retdm-keras --debug ...`` shows the
traceback instead. ``python -m retdm_keras.cli`` works as well (it loads TensorFlow at once;
the ``retdm-keras`` script, ``retdm_keras_cli.main``, loads it only for the commands that
need it, so ``--help``, ``zoo list`` and usage errors answer at once).

TensorFlow's C++ start-up logs (oneDNN and CPU-feature notices, absl's banner) are hidden:
``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (errors still show) and the lines TensorFlow prints
while it loads are filtered at that level. ``--debug`` or ``RETDM_KERAS_TF_LOGS=1`` shows
them all; a ``TF_CPP_MIN_LOG_LEVEL`` you set is kept.

One module per command (``retdm_keras.cli.train``, ``.tune``, ``.evaluate``, ``.calibrate``,
``.predict``, ``.export``, ``.publish``, ``.zoo``), each with its ``add_parser`` and
``cmd_*``. What several commands share is in public modules of this package: ``options``
(the options of ``train`` and ``tune``, their groups and checks) and ``training`` (the data
and model those options build), ``eval_data`` (the labelled data ``evaluate`` and
``calibrate`` read), ``common`` (what all commands share) and ``startup`` (loading TensorFlow
without its start-up logs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from retdm_keras import recipes
from retdm_keras.cli import calibrate, evaluate, export, predict, publish, train, tune, zoo
from retdm_keras.cli.calibrate import CALIBRATION_METHODS, cmd_calibrate
from retdm_keras.cli.common import (
    EXIT_USAGE,
    PROG,
    CLIError,
    backbone_runtime_option,
    first_line,
    load_model,
    write_json,
)
from retdm_keras.cli.evaluate import cmd_evaluate
from retdm_keras.cli.export import EXPORT_SUFFIXES, cmd_export
from retdm_keras.cli.predict import cmd_predict
from retdm_keras.cli.publish import cmd_publish
from retdm_keras.cli.startup import import_tensorflow, tf_log_level
from retdm_keras.cli.train import cmd_train
from retdm_keras.cli.training import build_model
from retdm_keras.cli.tune import OBJECTIVE_BASES, SEARCHABLE, TUNERS, cmd_tune
from retdm_keras.cli.zoo import cmd_zoo_fetch, cmd_zoo_list

# Importing the command modules (and building the parser) loads neither TensorFlow nor Keras:
# they import the library inside their cmd_* functions, after main has loaded it.

__all__ = [
    "CALIBRATION_METHODS",
    "COMMANDS",
    "EXPORT_SUFFIXES",
    "OBJECTIVE_BASES",
    "PROG",
    "SEARCHABLE",
    "TUNERS",
    "CLIError",
    "build_model",
    "build_parser",
    "cmd_calibrate",
    "cmd_evaluate",
    "cmd_export",
    "cmd_predict",
    "cmd_publish",
    "cmd_train",
    "cmd_tune",
    "cmd_zoo_fetch",
    "cmd_zoo_list",
    "load_model",
    "main",
    "write_json",
]


COMMANDS = ("train", "tune", "evaluate", "calibrate", "predict", "export", "publish", "zoo")

_WITHOUT_TENSORFLOW = frozenset({cmd_zoo_list})
"""The commands that run without loading TensorFlow (and the whole library)."""


def build_parser(*, defaults: bool = True) -> argparse.ArgumentParser:
    """The ``retdm-keras`` argument parser.

    With ``defaults=False`` the commands' options have no defaults: a parsed namespace then
    holds only the options written on the command line (see ``_written_options``).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="RETDM multi-label image classification (Keras 3).",
        epilog="Run 'retdm-keras COMMAND --help' for a command's options.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sub.required = True
    for command in (train, tune, evaluate, calibrate, predict, export, publish, zoo):
        command.add_parser(sub)
    if not defaults:
        for command in sub.choices.values():
            for action in command._actions:
                action.default = argparse.SUPPRESS
    return parser


def _written_options(argv: Sequence[str]) -> frozenset[str]:
    """The dests of the command's options that ``argv`` sets (not left at their default)."""
    return frozenset(vars(build_parser(defaults=False).parse_args(argv)))


def _is_input_error(err: BaseException) -> bool:
    """Errors caused by bad input files or options, reported without a traceback."""
    if isinstance(err, CLIError | FileNotFoundError | ValueError):
        return True
    if isinstance(err, recipes.WeightsUnavailableError):  # no download, no cached file
        return True
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return errors is not None and isinstance(
        err, errors.InvalidArgumentError | errors.NotFoundError
    )


def _load_library(*, debug: bool) -> None:
    """Import TensorFlow (its start-up logs quiet unless ``debug``, see ``startup``), then
    the whole package, as a plain ``import retdm_keras`` does: the commands and the models
    they load need its Keras classes registered, also when the ``retdm-keras`` script
    imported the package lazily."""
    import retdm_keras

    import_tensorflow(tf_log_level(debug=debug))
    retdm_keras.import_all()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed by argparse
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if getattr(args, "recipe", None) is not None:  # which options a recipe may not replace
        args.written = _written_options(argv)
    try:
        if args.func in _WITHOUT_TENSORFLOW:
            tf_log_level(debug=args.debug)  # in case the command still imports it
        else:
            _load_library(debug=args.debug)
        with backbone_runtime_option(args):
            return int(args.func(args))
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug or not _is_input_error(err):
            raise
        print(f"{PROG}: error: {first_line(err)}", file=sys.stderr)
        return EXIT_USAGE
