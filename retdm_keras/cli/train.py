"""``retdm-keras train``: three-stage training from options, or a recipe into a zoo entry."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
from typing import Any

from retdm_keras import recipes, zoo
from retdm_keras.cli.common import (
    PROG,
    CLIError,
    DefaultsFormatter,
    add_backbone_runtime_argument,
    evaluate_model,
    predict_scores,
    print_metrics,
    save_model,
    write_json,
    write_run_config,
)
from retdm_keras.cli.options import (
    DATA_OPTIONS,
    FIT_OPTIONS,
    FROZEN_OPTIONS,
    MODEL_OPTIONS,
    add_data_arguments,
    add_fit_arguments,
    add_frozen_arguments,
    add_model_arguments,
    check_fit_options,
    check_frozen_options,
    feature_cache,
    reject_written,
)
from retdm_keras.cli.training import (
    build_model,
    describe_sizes,
    train_data,
)
from retdm_keras.optimizer_defaults import backbone_learning_rates

MIN_ROWS_TO_HOLD_OUT = 10
"""Below this many training rows nothing is held out for the baseline's share."""


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


def _train_recipe(args: argparse.Namespace) -> int:
    """``retdm-keras train --recipe``: ``recipes.train_recipe`` into a zoo entry folder."""
    reject_written(
        args,
        (
            *DATA_OPTIONS,
            *MODEL_OPTIONS,
            *FIT_OPTIONS,
            *FROZEN_OPTIONS,
            "strategy",
            "resume",
            "baseline",
        ),
        "the recipe holds the data, model and training settings",
    )
    entry = recipes.train_recipe(
        args.recipe, args.out, verbose=args.verbose, feature_cache=feature_cache(args)
    )
    metadata = json.loads((entry / zoo.METADATA_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((entry / zoo.METRICS_FILE).read_text(encoding="utf-8"))
    training = metadata.get("training") or {}
    print(
        f"{PROG}: {len(metadata['label_names'])} labels; samples: "
        f"{describe_sizes(training.get('sizes', {}))}; backbone {metadata['model']['backbone']}"
    )
    print_metrics(f"test ({training.get('test_samples', '?')} samples):", metrics)
    publish = f"{PROG} publish {shlex.quote(str(entry))}"
    print(f"{PROG}: wrote zoo entry {entry}; publish it with: {publish}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``retdm-keras train``: fit the three stages, save the model and its records (or, with
    ``--recipe``, train a recipe into a zoo entry folder)."""
    if args.recipe is not None:
        return _train_recipe(args)
    check_fit_options(args)
    check_frozen_options(args)

    import keras
    import tensorflow as tf

    from retdm_keras.training import (
        fit_stages,
        learning_rates_used,
        resolve_freeze_backbone,
        resolve_verbose,
    )
    from retdm_keras.training.distributed import fit_stages_multiworker, is_chief, make_strategy

    keras.utils.set_random_seed(args.seed)
    strategy = make_strategy(getattr(args, "strategy", "default"))
    backup_dir = os.path.join(args.out, "backup")
    if os.path.isdir(backup_dir) and not args.resume:
        raise CLIError(
            f"{backup_dir} holds an interrupted run: pass --resume to continue it, or delete "
            "that folder to start over"
        )
    data = train_data(args)
    whole = data if data.val is None else None  # every training row, if held out below
    from retdm_keras.baseline_blend import DEFAULT_VAL_FRACTION

    one_device = getattr(args, "strategy", "default") == "default"
    enough = data.sizes.get("train", 0) >= MIN_ROWS_TO_HOLD_OUT
    if data.val is None and args.baseline is not False and one_device and enough:
        args.val_fraction = DEFAULT_VAL_FRACTION
        print(
            f"{PROG}: no validation data: holding out {DEFAULT_VAL_FRACTION:.0%} of the "
            "training rows (--val-fraction) to choose how much of the tuned logistic-"
            "regression baseline to mix in (--no-baseline trains RETDM alone on all rows)"
        )
        data = train_data(args)
    # validation rows cut from the training rows go back into training once they have
    # chosen the baseline's share (--refit)
    carved = args.val_fraction is not None and data.val is not None
    os.makedirs(args.out, exist_ok=True)
    with strategy.scope():  # weights, optimiser slots and memory bank live on every replica
        model, weights_used = build_model(args, data.label_names, input_dim=data.input_dim)
    if args.learning_rates is None:  # the default optimiser's, recorded in train_config.json
        args.learning_rates = list(backbone_learning_rates(model.backbone))
    print(
        f"{PROG}: {len(data.label_names)} labels; samples: {describe_sizes(data.sizes)}; "
        f"backbone {model.backbone}"
    )

    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if args.freeze_backbone is None:  # the default, decided once for the run (training.policy)
        args.freeze_backbone = resolve_freeze_backbone(
            model, data.train, None, args.feature_views, multiworker=multiworker
        )
        if args.freeze_backbone:
            print(
                f"{PROG}: the pretrained backbone stays frozen (its features are extracted "
                "once); --no-freeze-backbone fine-tunes it"
            )

    write_run_config(args, os.path.join(args.out, "train_config.json"), data, weights_used)

    if multiworker:
        if args.freeze_backbone:
            raise CLIError("--freeze-backbone is not supported with --strategy multiworker")
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

        def fit(model, data, backup_dir, baseline, schedule=None):
            return fit_stages(
                model,
                data.train,
                data.val,
                epochs=tuple(args.epochs),
                learning_rates=tuple(args.learning_rates),
                bank_data=data.bank,
                backup_dir=backup_dir,
                verbose=args.verbose,
                freeze_backbone=args.freeze_backbone,
                feature_views=args.feature_views,
                feature_cache=feature_cache(args),
                baseline=baseline,
                learning_rate_schedule=schedule,
            )

        histories = fit(model, data, backup_dir, args.baseline)
        choice = model.baseline_choice
        if carved and args.refit and choice is not None and choice.weight < 1.0:
            # the held-out rows chose β and C; the final RETDM learns from every row, like
            # the baseline stored in the model (docs/method.md, "Retrained on all rows")
            all_rows = whole or train_data(
                argparse.Namespace(**{**vars(args), "val_fraction": None})
            )
            rows = all_rows.sizes["train"]
            print(
                f"{PROG}: retraining RETDM on all {rows} training rows with the learning "
                f"rates the validation rows chose (β = {choice.weight:g} and the baseline "
                "stay as chosen; --no-refit keeps the model trained without them)"
            )
            keras.utils.set_random_seed(args.seed)
            final, _ = build_model(args, all_rows.label_names, input_dim=all_rows.input_dim)
            # the learning rates the validation rows chose for each epoch, replayed (without
            # validation rows a plateau of the training loss would never lower them)
            schedule = learning_rates_used(histories)
            histories = fit(final, all_rows, os.path.join(backup_dir, "refit"), False, schedule)
            if choice.weight > 0.0:
                final.set_baseline(choice.weight, *model.baseline_head.get_weights())
            choice.retdm_rows = rows
            final.baseline_choice = choice
            model = final
        history_rows = _history_logs(histories)
        if model.baseline_choice is not None:  # what was mixed in, and the numbers why
            config_path = os.path.join(args.out, "train_config.json")
            with open(config_path) as fh:
                config = json.load(fh)
            config["baseline_choice"] = model.baseline_choice.as_dict()
            write_json(config_path, config)
        shutil.rmtree(backup_dir, ignore_errors=True)  # finished: nothing left to resume
    model_path = os.path.join(args.out, "model.keras")
    save_model(model, model_path)
    write_json(os.path.join(args.out, "labels.json"), data.label_names)
    write_json(os.path.join(args.out, "history.json"), history_rows)
    print(f"{PROG}: saved {model_path}")

    if data.test is not None:
        scores = predict_scores(model, data.test, verbose=resolve_verbose(args.verbose))
        results = evaluate_model(model, data.test_labels, scores)
        print_metrics(f"test ({len(data.test_labels)} samples):", results)
        write_json(os.path.join(args.out, "metrics.json"), results)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a RETDM model (three stages) and save it",
        description=(
            "Train RETDM on an image folder + CSV, or on MULAN ARFF feature vectors; or, with "
            "--recipe, train a recipe file into a zoo entry folder (publish it with 'publish')."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument(
        "--recipe",
        metavar="RECIPE",
        help="recipe YAML file, or the name of a built-in recipe (scene, scene-features, coco, "
        "...), holding the data, model and training settings (their options are then an "
        "error); --out becomes a zoo entry folder with the test metrics",
    )
    add_data_arguments(p)
    add_model_arguments(p)
    add_fit_arguments(p)
    add_frozen_arguments(p)
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multiworker"),
        default="default",
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker = the cluster in "
        "TF_CONFIG (run the same command on every worker; only the chief writes --out)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run from OUT/backup (its last completed epoch; finished "
        "stages are skipped) — run with the same options as before",
    )
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after training, fit the tuned per-label logistic regression and mix it into the "
        "predictions with the share (0 to 1) that scores best on the validation data; the "
        "log and train_config.json say what was chosen (default: on, off with "
        "--strategy). --no-baseline keeps RETDM alone",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="when the validation rows are cut from the training rows (--val-fraction, or "
        "the 20%% held out without validation data): once they have chosen the baseline's "
        "share, retrain RETDM on all training rows (about twice the training time). "
        "--no-refit keeps RETDM trained on the rest",
    )
    p.add_argument("--out", required=True, help="output folder")
    add_backbone_runtime_argument(p)
    p.set_defaults(func=cmd_train)
