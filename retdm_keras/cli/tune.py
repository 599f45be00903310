"""``retdm-keras tune``: KerasTuner search over lam/mu (and more) from options or a recipe."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from typing import Any

from retdm_keras import recipes
from retdm_keras.cli.common import (
    PROG,
    CLIError,
    DefaultsFormatter,
    add_backbone_runtime_argument,
    require_file,
    write_json,
    write_run_config,
)
from retdm_keras.cli.options import (
    DATA_OPTIONS,
    FIT_OPTIONS,
    MODEL_OPTIONS,
    add_data_arguments,
    add_fit_arguments,
    add_model_arguments,
    check_fit_options,
    reject_written,
)
from retdm_keras.cli.training import (
    build_with_fallback,
    describe_sizes,
    model_kwargs,
    train_data,
)
from retdm_keras.metric_names import METRIC_NAMES
from retdm_keras.optimizer_defaults import default_optimizer_name, default_weight_decay
from retdm_keras.recipes import TrainingSpec

# Kept here rather than imported with retdm_keras.tuning (which loads KerasTuner) and
# retdm_keras.metrics (Keras) so that building the parser stays light; the tests check
# SEARCHABLE against tuning.DEFAULT_CHOICES and METRIC_NAMES against metrics.METRIC_NAMES.
TUNERS = ("random", "bayesian", "hyperband")
SEARCHABLE = ("alpha", "margin", "num_neighbors", "embed_dim", "linear_skip", "learning_rates")
TUNER_PROJECT = "search"
DEFAULT_MAX_TRIALS = 10
TRAINING_LOGS = ("loss", "cls_loss", "metric_loss", "rec_loss", "mAP", "O-F1")
"""What every training epoch logs; with ``val_`` the validation data's values."""
OBJECTIVE_BASES = (*TRAINING_LOGS[:4], *METRIC_NAMES)
"""What ``--objective`` accepts after ``val_``: the losses and ``metrics.METRIC_NAMES``."""


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


def _tune_recipe(args: argparse.Namespace) -> tuple[recipes.Recipe, recipes.Recipe]:
    """``tune --recipe``: ``(the recipe, the recipe the search runs)``.

    The recipe holds the data and model settings (those options are an error). The fit
    options on the command line (``--epochs``, ``--learning-rates``, ``--batch-size``,
    ``--seed``) override its training ones for the search; ``args``' fit options are set to
    the values the search runs with.
    """
    reject_written(
        args, (*DATA_OPTIONS, *MODEL_OPTIONS), "the recipe holds the data and model settings"
    )
    recipe = recipes.load_recipe(args.recipe)
    overrides = {}
    for dest in FIT_OPTIONS:
        if dest in args.written:
            value = getattr(args, dest)
            overrides[dest] = tuple(value) if isinstance(value, list) else value
    training = dataclasses.replace(recipe.training, **overrides)
    for dest in FIT_OPTIONS:
        value = getattr(training, dest)
        setattr(args, dest, list(value) if isinstance(value, tuple) else value)
    default = default_optimizer_name(recipe.model.backbone)
    decay = default_weight_decay(default, recipe.model.backbone)
    unused = [
        f"training.{name}"
        for name in ("momentum", "reduce_lr_patience")
        if getattr(training, name) != getattr(TrainingSpec, name)
    ]
    if training.weight_decay not in (None, decay):
        unused.insert(0, "training.weight_decay")
    if training.optimizer not in (None, default):
        unused.insert(0, "training.optimizer")
    if unused:
        print(
            f"{PROG}: warning: the search trains with the backbone's default optimiser "
            f"({default}, weight decay {decay:g}) and learning-rate schedule, not with the "
            f"recipe's {', '.join(unused)}",
            file=sys.stderr,
        )
    return recipe, dataclasses.replace(recipe, training=training)


def _recipe_model_kwargs(
    recipe: recipes.Recipe, data: recipes.TrainData
) -> tuple[dict[str, Any], str | None]:
    """``(kwargs, weights)`` as ``model_kwargs`` gives them, from the recipe's model section.

    ImageNet weights are fetched here once; unlike the options, a recipe never falls back to
    random weights (``recipes.WeightsUnavailableError``).
    """
    kwargs = recipes.model_kwargs(recipe, data)
    for name in ("num_labels", "lam", "mu"):
        del kwargs[name]
    weights = kwargs.pop("weights")
    if weights == "imagenet":
        recipes.build_model(recipe, data)
    return kwargs, weights


def _tuned_recipe(recipe: recipes.Recipe, best: dict[str, Any], search: set[str]) -> recipes.Recipe:
    """``recipe`` with the best trial's values: ``lam``, ``mu``, the searched model knobs
    and, when searched, the learning rates."""
    knobs = ["lam", "mu", *(k for k in SEARCHABLE if k in search and k != "learning_rates")]
    model = dataclasses.replace(recipe.model, **{k: best["model_kwargs"][k] for k in knobs})
    training = recipe.training
    if "learning_rates" in search:
        rates = tuple(float(v) for v in best["learning_rates"])
        training = dataclasses.replace(training, learning_rates=rates)
    return dataclasses.replace(recipe, model=model, training=training)


def cmd_tune(args: argparse.Namespace) -> int:
    """``retdm-keras tune``: KerasTuner search over lam/mu (and more), best recipe + heatmap."""
    recipe = run_recipe = None
    if args.recipe is not None:
        recipe, run_recipe = _tune_recipe(args)
    check_fit_options(args)
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
        require_file(args.stage1_weights, "stage-1 weights file")
    search = set(args.search or ())

    import keras

    from retdm_keras.tuning import RETDMHyperModel, best_recipe, heatmap, retdm_objective

    keras.utils.set_random_seed(args.seed)
    data = train_data(args, run_recipe)
    if data.val is None:
        if recipe is not None:
            how = f"give {args.recipe} a data.val_split or data.val_fraction"
        elif data.input_dim is not None:
            how = "hold out training rows with --val-fraction"
        else:
            how = "a 'val' split in --split-json, or name one with --val-split"
        raise CLIError(f"tune scores every trial on validation data: {how}")
    if "linear_skip" in search and data.input_dim is None:
        raise CLIError("--search linear_skip is for feature vectors (--arff-train), not images")
    os.makedirs(args.out, exist_ok=True)
    frozen: dict = {}  # a recipe's frozen-backbone training: features extracted once
    if run_recipe is not None:
        kwargs, weights = _recipe_model_kwargs(run_recipe, data)
        training = run_recipe.training
        frozen = dict(
            freeze_backbone=training.freeze_backbone, feature_views=training.feature_views
        )
    else:
        kwargs, weights = model_kwargs(args, data.label_names, data.input_dim)
        if weights == "imagenet":  # fetch the weights once; from scratch if they cannot be had
            full = {**kwargs, "num_labels": len(data.label_names)}
            _, weights = build_with_fallback(full, weights)
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
        search_linear_skip="linear_skip" in search,
        search_learning_rates="learning_rates" in search,
        epochs=tuple(args.epochs),
        learning_rates=None if args.learning_rates is None else tuple(args.learning_rates),
        stage1_weights=args.stage1_weights,
        bank_data=data.bank,
        **frozen,
    )
    tuner = _make_tuner(args, hypermodel, retdm_objective(args.objective))
    print(
        f"{PROG}: {len(data.label_names)} labels; samples: {describe_sizes(data.sizes)}; "
        f"backbone {kwargs['backbone']}; {args.tuner} search on {args.objective}"
    )
    write_run_config(args, os.path.join(args.out, "tune_config.json"), data, weights)

    from retdm_keras.training import resolve_verbose

    tuner.search(verbose=resolve_verbose(args.verbose))

    best = best_recipe(tuner)
    saved = [os.path.join(args.out, "best_recipe.json")]
    write_json(saved[0], best)
    summary = f"best trial {best['trial_id']}: {best['objective']} {best['score']:.4f}"
    if recipe is not None:  # the input recipe with the best values, ready to train
        saved.append(os.path.join(args.out, "best_recipe.yaml"))
        recipes.save_recipe(
            _tuned_recipe(recipe, best, search),
            saved[1],
            comment=f"{args.recipe} tuned by {PROG} tune ({args.tuner} search): {summary}",
        )
    saved.append(os.fspath(heatmap(tuner, os.path.join(args.out, "lam_mu.png"))))
    values = ", ".join(
        f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in best["hyperparameters"].items()
    )
    print(f"{PROG}: {summary}")
    print(f"{PROG}: {values}")
    print(f"{PROG}: saved {', '.join(saved[:-1])} and {saved[-1]}")
    if recipe is not None:
        print(f"{PROG}: train it with: {PROG} train --recipe {shlex.quote(saved[1])} --out DIR")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search lam/mu (and more) with KerasTuner",
        description=(
            "KerasTuner search over RETDM's loss weights lam and mu (log-uniform) and, with "
            "--search, more knobs; every trial runs the three stages and is scored on the "
            "validation data (required). Writes best_recipe.json, the lam/mu heatmap "
            "lam_mu.png, tune_config.json and the tuner's trials into --out; with --recipe "
            "also best_recipe.yaml, the recipe with the best values."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument(
        "--recipe",
        metavar="RECIPE",
        help="take the data and model settings from a recipe (a YAML file or a built-in "
        "recipe's name; their options are "
        "then an error) and its training ones, which --epochs, --learning-rates, "
        "--batch-size and --seed override for the search",
    )
    add_data_arguments(p)
    add_model_arguments(p, loss_weights=False)
    add_fit_arguments(p)
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
    add_backbone_runtime_argument(p)
    p.set_defaults(func=cmd_tune)
