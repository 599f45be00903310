"""Run a recipe: its model, optimiser and training, then a zoo entry with test metrics.

:func:`train_recipe` builds the datasets and the model, runs ``fit_stages``, evaluates the 12
metrics on the recipe's test split and writes a zoo entry folder
(:func:`retdm_keras.zoo.write_entry`)::

    entry = train_recipe("scene-features", "runs/zoo/scene-features")   # then zoo.publish(entry)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retdm_keras.optimizer_defaults import (
    default_learning_rates,
    default_optimizer_name,
    default_weight_decay,
)
from retdm_keras.recipes.datasets import TrainData, build_datasets
from retdm_keras.recipes.errors import RecipeError, WeightsUnavailableError
from retdm_keras.recipes.paths import expand_path
from retdm_keras.recipes.recipe_files import load_recipe
from retdm_keras.recipes.schema import ModelSpec, Recipe, TrainingSpec

if TYPE_CHECKING:  # pragma: no cover - typing only
    import keras
    import tensorflow as tf

    from retdm_keras.model import RETDM

__all__ = [
    "build_model",
    "make_optimizer",
    "model_kwargs",
    "optimizer_name",
    "predict_with_labels",
    "stage_learning_rates",
    "train_recipe",
]


def model_kwargs(recipe: Recipe, data: TrainData) -> dict[str, Any]:
    """The ``RETDM`` keyword arguments of the recipe for ``data``: the model section (a
    weights file resolved like a data path) plus ``num_labels``, ``label_names`` and
    ``input_dim`` from the data."""
    kwargs = dataclasses.asdict(recipe.model)
    if isinstance(kwargs["weights"], str) and kwargs["weights"].lower() == "none":
        kwargs["weights"] = None
    elif kwargs["weights"] not in (None, "imagenet"):
        kwargs["weights"] = os.fspath(
            expand_path(kwargs["weights"], base=recipe.base_dir, where="model.weights")
        )
    kwargs.update(
        num_labels=len(data.label_names),
        label_names=list(data.label_names),
        input_dim=data.input_dim,
    )
    return kwargs


def build_model(recipe: Recipe, data: TrainData) -> RETDM:
    """The recipe's ``RETDM`` for ``data`` (label names, and feature size for ARFF).

    Raises:
        WeightsUnavailableError: (a ``RuntimeError``) ``weights: imagenet`` could not be
            loaded (a recipe never falls back to random weights silently).
    """
    from retdm_keras.model import RETDM

    kwargs = model_kwargs(recipe, data)
    try:
        return RETDM(**kwargs)
    except Exception as err:
        if recipe.model.weights != "imagenet":
            raise
        raise WeightsUnavailableError(
            f"ImageNet weights for {recipe.model.backbone!r} could not be loaded "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); put them in "
            f"the Keras cache ($KERAS_HOME/models) or allow the download"
        ) from err


def make_optimizer(
    training: TrainingSpec, backbone: str | None = None
) -> Callable[[str, float], keras.optimizers.Optimizer]:
    """``optimizer(stage, learning_rate)`` for ``fit_stages`` from the training spec; an
    unset ``optimizer`` is the backbone's default (``default_optimizer_name``), an unset
    ``weight_decay`` that optimiser's for the backbone (``default_weight_decay``)."""
    from retdm_keras.training import make_optimizer as named_optimizer

    name = optimizer_name(training, backbone)
    weight_decay = training.weight_decay
    if weight_decay is None:
        weight_decay = default_weight_decay(name, backbone or ModelSpec.backbone)

    def optimizer(stage: str, learning_rate: float) -> keras.optimizers.Optimizer:
        return named_optimizer(
            name, learning_rate, momentum=training.momentum, weight_decay=weight_decay
        )

    return optimizer


def optimizer_name(training: TrainingSpec, backbone: str | None = None) -> str:
    """The recipe's optimiser, or the backbone's default when it names none."""
    if training.optimizer is not None:
        return training.optimizer
    return default_optimizer_name(backbone or ModelSpec.backbone)


def stage_learning_rates(training: TrainingSpec, backbone: str | None = None) -> tuple[float, ...]:
    """The recipe's learning rates per stage, or its optimiser's defaults when unset."""
    if training.learning_rates is not None:
        return tuple(training.learning_rates)
    return default_learning_rates(optimizer_name(training, backbone))


def predict_with_labels(model: RETDM, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, scores)`` of every sample of ``dataset``, in iteration order."""
    labels, scores = [], []
    for x, y in dataset:
        scores.append(np.asarray(model.predict_on_batch(x)))
        labels.append(np.asarray(y))
    if not labels:
        raise ValueError("the test dataset is empty")
    return np.concatenate(labels), np.concatenate(scores)


def _final_logs(histories: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {
        stage: {k: float(v[-1]) for k, v in history.history.items() if v}
        for stage, history in histories.items()
    }


def train_recipe(
    recipe: Recipe | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    verbose: int | str = "auto",
    callbacks: Sequence[Any] = (),
    feature_cache: str | os.PathLike[str] | bool | None = None,
) -> Path:
    """Train a recipe, evaluate it on its test split and write a zoo entry to ``out_dir``.

    Args:
        recipe: a :class:`Recipe`, the path of its YAML file, or a built-in recipe name.
        out_dir: the entry folder to write (created; its entry files are replaced).
        verbose: Keras verbosity of ``fit_stages``.
        callbacks: extra Keras callbacks for every stage.
        feature_cache: with a frozen backbone: the feature cache folder (default
            ``$KERAS_HOME/retdm_features``; False: none).

    Returns:
        ``out_dir`` as a ``Path``: ``config.json``, ``model.weights.h5``, ``labels.json``,
        ``metrics.json`` (the 12 metrics on the test split), ``metadata.json``, ``README.md``.

    Raises:
        RecipeError: the recipe has no test split (an entry must report test metrics).
    """
    import keras

    from retdm_keras.metrics import evaluate
    from retdm_keras.training import fit_stages, resolve_freeze_backbone
    from retdm_keras.zoo.entry import write_entry

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    training = recipe.training
    keras.utils.set_random_seed(training.seed)
    data = build_datasets(recipe)
    if data.test is None:
        raise RecipeError(f"{recipe.source or recipe.name}: data: the recipe needs a test split")
    model = build_model(recipe, data)
    rates = stage_learning_rates(training, model.backbone)
    # decided once for the run (training.policy); fit_stages and the entry use the answer
    frozen = resolve_freeze_backbone(
        model, data.train, training.freeze_backbone, training.feature_views
    )
    started = time.time()
    histories = fit_stages(
        model,
        data.train,
        data.val,
        epochs=training.epochs,
        learning_rates=rates,
        optimizer=make_optimizer(training, model.backbone),
        callbacks=callbacks,
        bank_data=data.bank,
        reduce_lr_patience=training.reduce_lr_patience,
        verbose=verbose,
        freeze_backbone=frozen,
        feature_views=training.feature_views,
        feature_cache=feature_cache,
        baseline=training.baseline,
    )
    seconds = time.time() - started
    labels, scores = predict_with_labels(model, data.test)
    metrics = evaluate(labels, scores, model.decision_threshold)
    return write_entry(
        model,
        out_dir,
        metrics=metrics,
        name=recipe.name,
        dataset=recipe.dataset,
        description=recipe.description,
        recipe=recipe.to_dict(),
        # a frozen ImageNet backbone is the standard keras.applications file: not stored
        backbone_weights=("imagenet" if frozen and recipe.model.weights == "imagenet" else None),
        training={
            # what ran where the recipe left them to the backbone's defaults
            "optimizer": optimizer_name(training, model.backbone),
            "learning_rates": list(rates),
            "sizes": data.sizes,
            "test_samples": int(len(labels)),
            "train_seconds": round(seconds, 1),
            "final_logs": _final_logs(histories),
            # the tuned baseline's share, chosen on the validation split (None: not tried)
            "baseline": (
                model.baseline_choice.as_dict() if model.baseline_choice is not None else None
            ),
        },
    )
