"""Reading a finished search: the best trial as a recipe, and a plot of every trial's score."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np

from retdm_keras.tuning.hypermodel import RETDMHyperModel


def _completed_trials(tuner: kt.Tuner) -> list:
    trials = [
        t for t in tuner.oracle.trials.values() if t.status == "COMPLETED" and t.score is not None
    ]
    if not trials:
        raise ValueError("the tuner has no completed trial yet")
    return trials


def best_recipe(tuner: kt.Tuner) -> dict[str, Any]:
    """The best trial's hyper-parameters, as a recipe to retrain with.

    Returns:
        ``{"hyperparameters": {name: value}, "objective": name, "score": value,
        "trial_id": id}``, plus, for a ``RETDMHyperModel``, ``"model_kwargs"`` (all ``RETDM``
        arguments), ``"learning_rates"`` and ``"epochs"`` (the stage schedule).
        KerasTuner's bookkeeping values (``tuner/...``) are left out.
    """
    _completed_trials(tuner)
    (trial,) = tuner.oracle.get_best_trials(1)
    hp = trial.hyperparameters
    objective = tuner.oracle.objective
    recipe: dict[str, Any] = {
        "hyperparameters": {k: v for k, v in hp.values.items() if not k.startswith("tuner/")},
        "objective": getattr(objective, "name", str(objective)),
        "score": trial.score,
        "trial_id": trial.trial_id,
    }
    hypermodel = tuner.hypermodel
    if isinstance(hypermodel, RETDMHyperModel):
        recipe["model_kwargs"] = hypermodel.model_kwargs_for(hp.copy())
        recipe["learning_rates"] = list(hypermodel.learning_rates_for(hp.copy()))
        recipe["epochs"] = list(hypermodel.epochs)
    return recipe


def heatmap(
    tuner: kt.Tuner,
    path: str | os.PathLike,
    *,
    x: str = "lam",
    y: str = "mu",
) -> Path:
    """Plot the objective of every completed trial over two hyper-parameters (log axes).

    Each trial is a dot at ``(x, y)`` coloured by its score; the best trial is starred.

    Returns:
        The PNG path.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state (Agg canvas)

    trials = _completed_trials(tuner)
    xs = np.array([t.hyperparameters.get(x) for t in trials], dtype=float)
    ys = np.array([t.hyperparameters.get(y) for t in trials], dtype=float)
    scores = np.array([t.score for t in trials], dtype=float)
    objective = tuner.oracle.objective
    best = int(np.argmin(scores) if objective.direction == "min" else np.argmax(scores))

    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    dots = axes.scatter(xs, ys, c=scores, cmap="viridis", s=70, edgecolors="black")
    axes.scatter(xs[best], ys[best], marker="*", s=300, c="red", edgecolors="black")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    direction = "lower" if objective.direction == "min" else "higher"
    axes.set_title(
        f"{len(trials)} trials; best {x}={xs[best]:.3g}, {y}={ys[best]:.3g} ({scores[best]:.4g})",
        fontsize=9,
    )
    figure.colorbar(dots, ax=axes, label=f"{objective.name} ({direction} is better)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
