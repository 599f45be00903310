"""``RETDMHyperModel``: one KerasTuner trial is one run of RETDM's stage schedule.

The hypermodel declares the searched knobs (``lam`` and ``mu`` log-uniform, optional choices
and learning rates), builds a ``RETDM`` for a trial and trains it with ``fit_stages``,
wrapping the tuner's checkpoints so that they only see the scored (last) stage and adding
every ``metrics.evaluate`` value to that stage's logs; ``retdm_objective`` names the
direction of a logged metric.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from retdm_keras.metrics import LOWER_IS_BETTER, evaluate
from retdm_keras.model import RETDM, STAGES
from retdm_keras.training import (
    backbone_learning_rates,
    backbone_optimizer,
    default_metrics,
    fit_stages,
)

DEFAULT_CHOICES: dict[str, tuple] = {
    "alpha": (0.0, 0.5, 1.0),
    "margin": (0.0, 0.1, 0.5, 1.0),
    "num_neighbors": (5, 10, 20),
    "embed_dim": (128, 256, 512),
    "linear_skip": (True, False),
}
"""Values tried for a knob switched on with ``search_<knob>=True``."""

RETDM_DEFAULT_BACKBONE: str = inspect.signature(RETDM).parameters["backbone"].default
"""The backbone of a ``RETDM`` whose ``model_kwargs`` name none."""

LEARNING_RATE_RANGE = (1e-4, 1e-1)
"""Log-uniform range of each stage's learning rate with ``search_learning_rates=True``."""


def retdm_objective(name: str = "val_mAP") -> kt.Objective:
    """A KerasTuner objective on a logged metric, minimised for losses and the metrics of
    ``metrics.LOWER_IS_BETTER`` (hamming/ranking loss, one-error, coverage), else maximised."""
    base = name[4:] if name.startswith("val_") else name
    lower = "loss" in base or base in LOWER_IS_BETTER
    return kt.Objective(name, direction="min" if lower else "max")


class _OnlyInStage(keras.callbacks.Callback):
    """Forward epoch and train events to ``callback`` only during one training stage."""

    def __init__(self, callback: keras.callbacks.Callback, stage: str):
        super().__init__()
        self.callback = callback
        self.stage = stage

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def _active(self) -> bool:
        return self.model.stage == self.stage

    def on_train_begin(self, logs=None):
        if self._active():
            self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        if self._active():
            self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self._active():
            self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._active():
            self.callback.on_epoch_end(epoch, logs)


class _ValidationMetrics(keras.callbacks.Callback):
    """Add every ``metrics.evaluate`` result on the validation data to the epoch logs."""

    def __init__(self, val_data: tf.data.Dataset, stage: str):
        super().__init__()
        self.val_data = val_data
        self.stage = stage

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.model.stage != self.stage:
            return
        labels, scores = [], []
        for batch in self.val_data:
            scores.append(np.asarray(self.model.predict_on_batch(batch[0])))
            labels.append(np.asarray(batch[1]))
        results = evaluate(
            np.concatenate(labels), np.concatenate(scores), self.model.decision_threshold
        )
        for name, value in results.items():
            logs.setdefault(f"val_{name}", value)


def _is_checkpoint(callback: keras.callbacks.Callback) -> bool:
    """KerasTuner's best-epoch checkpoint (``SaveBestEpoch``) or a Keras ``ModelCheckpoint``."""
    return isinstance(callback, keras.callbacks.ModelCheckpoint) or (
        type(callback).__name__ == "SaveBestEpoch"
    )


def _choices(option: bool | Sequence, knob: str) -> tuple | None:
    if option is False or option is None:
        return None
    if option is True:
        return DEFAULT_CHOICES[knob]
    values = tuple(option)
    if not values:
        raise ValueError(f"search_{knob} needs at least one value")
    return values


class RETDMHyperModel(kt.HyperModel):
    """A KerasTuner ``HyperModel`` that builds and trains ``RETDM`` with ``fit_stages``.

    Args:
        num_labels: number of labels ``C``.
        train_data: training batches ``({"images" | "features", "index"}, labels)``.
        val_data: validation batches ``(inputs, labels)``; needed for ``val_*`` objectives.
        model_kwargs: fixed ``RETDM`` arguments (backbone, image_size, weights, ...).
        lam_range, mu_range: log-uniform ranges of ``lam`` and ``mu`` (equal ends: fixed).
        search_alpha, search_margin, search_num_neighbors, search_embed_dim,
            search_linear_skip: ``True`` to search ``DEFAULT_CHOICES[knob]``, or a sequence
            of values to choose from. ``linear_skip`` (feature vectors only) is worth
            searching together with ``lam`` and ``mu``, as its best value depends on them
            (see ``docs/method.md``, "A linear path for feature vectors").
        search_learning_rates: ``True`` (``LEARNING_RATE_RANGE``) or a ``(low, high)`` range
            for a log-uniform learning rate per stage; else ``learning_rates`` are used.
        epochs: ``(e1, e2, e3)`` epochs of the three stages.
        learning_rates: fixed learning rate per stage (default: as in ``fit_stages``, those
            of the backbone's default optimiser, which trials use).
        stage1_weights: weights (``.weights.h5`` or ``.keras``) of a model trained through
            stage 1 with the same architecture; trials load them in ``build`` and skip stage 1.
        bank_data: un-augmented training data for the memory-bank passes (see ``fit_stages``).
        full_metrics: add every ``metrics.evaluate`` value as ``val_<name>`` to the scored
            stage's logs (one extra pass over ``val_data`` per epoch).
        freeze_backbone, feature_views, feature_cache: frozen-backbone trials (see
            ``fit_stages``): the backbone's features are extracted once into the feature
            cache, so every later trial trains on cached vectors. ``freeze_backbone=None``
            (default) is ``fit_stages``' default: frozen when ``model_kwargs`` give the
            image backbone pretrained ``weights``.
        name, tunable: as for ``kt.HyperModel``.
    """

    def __init__(
        self,
        num_labels: int,
        *,
        train_data: tf.data.Dataset,
        val_data: tf.data.Dataset | None = None,
        model_kwargs: dict[str, Any] | None = None,
        lam_range: tuple[float, float] = (1e-2, 10.0),
        mu_range: tuple[float, float] = (1e-2, 10.0),
        search_alpha: bool | Sequence[float] = False,
        search_margin: bool | Sequence[float] = False,
        search_num_neighbors: bool | Sequence[int] = False,
        search_embed_dim: bool | Sequence[int] = False,
        search_linear_skip: bool | Sequence[bool] = False,
        search_learning_rates: bool | tuple[float, float] = False,
        epochs: Sequence[int] = (10, 5, 10),
        learning_rates: Sequence[float] | None = None,
        stage1_weights: str | os.PathLike | None = None,
        bank_data: tf.data.Dataset | None = None,
        full_metrics: bool = True,
        freeze_backbone: bool | None = None,
        feature_views: int = 4,
        feature_cache: str | os.PathLike | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        backbone = (model_kwargs or {}).get("backbone", RETDM_DEFAULT_BACKBONE)
        if freeze_backbone and backbone == "mlp":
            raise ValueError("freeze_backbone needs an image backbone, not 'mlp'")
        if learning_rates is None:
            learning_rates = backbone_learning_rates(backbone)
        if len(epochs) != len(STAGES) or len(learning_rates) != len(STAGES):
            raise ValueError(f"epochs and learning_rates need one value per stage {STAGES}")
        for label, (low, high) in (("lam_range", lam_range), ("mu_range", mu_range)):
            if not 0 < low <= high:
                raise ValueError(f"{label} must be (low, high) with 0 < low <= high")
        self.num_labels = int(num_labels)
        self.train_data = train_data
        self.val_data = val_data
        self.model_kwargs = dict(model_kwargs or {})
        self.lam_range = (float(lam_range[0]), float(lam_range[1]))
        self.mu_range = (float(mu_range[0]), float(mu_range[1]))
        self.choices = {
            knob: values
            for knob, option in (
                ("alpha", search_alpha),
                ("margin", search_margin),
                ("num_neighbors", search_num_neighbors),
                ("embed_dim", search_embed_dim),
                ("linear_skip", search_linear_skip),
            )
            if (values := _choices(option, knob)) is not None
        }
        if "linear_skip" in self.choices and backbone != "mlp":
            raise ValueError(
                f"search_linear_skip needs feature vectors (backbone 'mlp'), not {backbone!r}"
            )
        if search_learning_rates is True:
            search_learning_rates = LEARNING_RATE_RANGE
        self.learning_rate_range = tuple(search_learning_rates) if search_learning_rates else None
        self.epochs = tuple(int(e) for e in epochs)
        self.learning_rates = tuple(float(lr) for lr in learning_rates)
        self.stage1_weights = None if stage1_weights is None else str(stage1_weights)
        self.freeze_backbone = None if freeze_backbone is None else bool(freeze_backbone)
        self.feature_views = int(feature_views)
        self.feature_cache = feature_cache
        if self.stage1_weights is not None and "embed_dim" in self.choices:
            raise ValueError(
                "stage1_weights fix the architecture: search_embed_dim cannot be used with them"
            )
        self.bank_data = bank_data
        self.full_metrics = bool(full_metrics)
        # The training label sets a trial recorded (``RETDM.label_sets``): config, not
        # weights, so ``build`` hands them to the models KerasTuner reloads from a trial's
        # weights (``get_best_models``, Hyperband's continued trials), which then predict
        # with label-set retrieval as the trained model did.
        self.label_sets: list[list[int]] | None = None

    # ------------------------------------------------------------------ hyper-parameters
    @staticmethod
    def _log_float(hp: kt.HyperParameters, name: str, low: float, high: float) -> float:
        if low == high:
            return hp.Fixed(name, low)
        return hp.Float(name, low, high, sampling="log")

    def model_kwargs_for(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """The ``RETDM`` keyword arguments (fixed + searched) of ``hp``."""
        kwargs = dict(self.model_kwargs)
        kwargs["lam"] = self._log_float(hp, "lam", *self.lam_range)
        kwargs["mu"] = self._log_float(hp, "mu", *self.mu_range)
        for knob, values in self.choices.items():
            if all(isinstance(v, bool) for v in values):  # hp.Choice would store 1 / 0
                if len(set(values)) == 1:
                    kwargs[knob] = hp.Fixed(knob, values[0])
                else:
                    kwargs[knob] = hp.Boolean(knob, default=values[0])
            else:
                kwargs[knob] = hp.Choice(knob, list(values))
        return kwargs

    def learning_rates_for(self, hp: kt.HyperParameters) -> tuple[float, float, float]:
        """The learning rate of each stage under ``hp``."""
        if self.learning_rate_range is None:
            return self.learning_rates
        low, high = self.learning_rate_range
        return tuple(
            self._log_float(hp, f"learning_rate_{stage}", low, high)
            if not (stage == "classifier" and self.stage1_weights)
            else default
            for stage, default in zip(STAGES, self.learning_rates, strict=True)
        )

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        self.model_kwargs_for(hp)
        self.learning_rates_for(hp)

    # ------------------------------------------------------------------ build / fit
    def build(self, hp: kt.HyperParameters) -> RETDM:
        """A ``RETDM`` for ``hp``, compiled for its first stage (``"metric"`` when it starts
        from ``stage1_weights``, which are loaded here)."""
        model = RETDM(self.num_labels, **self.model_kwargs_for(hp))
        if self.label_sets is not None:
            model.label_sets = self.label_sets
        learning_rates = self.learning_rates_for(hp)
        first = "classifier"
        if self.stage1_weights is not None:
            model.load_weights(self.stage1_weights)
            first = "metric"
        model.set_stage(first)
        model.compile(
            optimizer=backbone_optimizer(model.backbone, learning_rates[STAGES.index(first)]),
            metrics=default_metrics(self.num_labels),
        )
        return model

    def fit(
        self,
        hp: kt.HyperParameters,
        model: RETDM,
        *args: Any,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        epochs: int | None = None,
        initial_epoch: int = 0,
        validation_data: tf.data.Dataset | None = None,
        verbose: int | str = "auto",
        **kwargs: Any,
    ) -> keras.callbacks.History:
        """Run the stages and return the ``History`` of the last one (the scored stage).

        ``args[0]`` / ``validation_data`` (from ``tuner.search``) override the constructor's
        data. ``epochs``/``initial_epoch`` (from Hyperband) set the joint stage's epochs.
        ``callbacks`` (the tuner's) run in every stage; checkpoints only in the scored stage.
        """
        if len(args) > 1 or kwargs:
            raise TypeError(
                "RETDMHyperModel.fit takes the training data (optional), callbacks, epochs, "
                f"initial_epoch, validation_data and verbose; got {len(args)} positional "
                f"arguments and {sorted(kwargs)}"
            )
        train = args[0] if args else self.train_data
        val = validation_data if validation_data is not None else self.val_data
        stage_epochs = list(self.epochs)
        if self.stage1_weights is not None:
            stage_epochs[0] = 0
        if epochs is not None:  # Hyperband's budget goes to the joint stage
            stage_epochs[2] = int(epochs) - int(initial_epoch)
            if "tuner/trial_id" in hp.values:  # continues a trial: its weights are loaded
                stage_epochs[0] = stage_epochs[1] = 0
        ran = [stage for stage, e in zip(STAGES, stage_epochs, strict=True) if e > 0]
        if not ran:
            raise ValueError(f"no stage has epochs to run: {tuple(stage_epochs)}")
        scored = ran[-1]
        stage_callbacks = [
            _OnlyInStage(cb, scored) if _is_checkpoint(cb) else cb for cb in callbacks or ()
        ]
        if val is not None and self.full_metrics:
            stage_callbacks.insert(0, _ValidationMetrics(val, scored))
        histories = fit_stages(
            model,
            train,
            val,
            epochs=stage_epochs,
            learning_rates=self.learning_rates_for(hp),
            callbacks=stage_callbacks,
            bank_data=self.bank_data,
            verbose=verbose,
            freeze_backbone=self.freeze_backbone,
            feature_views=self.feature_views,
            feature_cache=self.feature_cache,
            baseline=False,  # a trial scores RETDM's own settings, not a mix chosen on val
        )
        if model.label_sets is not None:
            self.label_sets = model.label_sets
        return histories[scored]
