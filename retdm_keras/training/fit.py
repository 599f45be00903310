"""``fit_stages``: the three stages through Keras ``model.fit`` (one device, or a
``MirroredStrategy`` the model was built under), with the frozen-backbone path and the tuned
baseline mixed in afterwards."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from retdm_keras.baseline_blend import baseline_features, fit_baseline_blend
from retdm_keras.checkpointing import StageRecords, StopOnNonFiniteLoss
from retdm_keras.model import RETDM
from retdm_keras.optimizer_defaults import backbone_learning_rates
from retdm_keras.training.optimizers import default_metrics
from retdm_keras.training.policy import resolve_freeze_backbone
from retdm_keras.training.schedule import (
    check_learning_rate_schedule,
    learning_rate_callback,
    stage_schedule,
)
from retdm_keras.training.stage_loop import stages_to_run
from retdm_keras.training.verbosity import resolve_verbose

__all__ = ["fit_stages"]


def fit_stages(
    model: RETDM,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset | None = None,
    epochs: Sequence[int] = (10, 5, 10),
    *,
    learning_rates: Sequence[float] | None = None,
    optimizer: Callable[[str, float], keras.optimizers.Optimizer] | None = None,
    metrics: Callable[[], list] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    bank_data: tf.data.Dataset | None = None,
    reduce_lr_patience: int = 2,
    backup_dir: str | os.PathLike[str] | None = None,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int | str = "auto",
    freeze_backbone: bool | None = None,
    feature_views: int = 4,
    feature_cache: str | os.PathLike[str] | bool | None = None,
    baseline: bool | None = None,
    learning_rate_schedule: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, keras.callbacks.History]:
    """Train ``model`` through the stages ``classifier → metric → joint``.

    Args:
        model: a ``RETDM`` model.
        train_data: batches ``({"images" | "features", "index"}, labels)``.
        val_data: optional validation batches (no index needed); drives the learning-rate
            schedule and ``val_*`` logs.
        epochs: ``(e1, e2, e3)`` epochs per stage; 0 skips a stage.
        learning_rates: initial learning rate per stage; default those of the default
            optimiser (``backbone_learning_rates``): 0.01 / 0.01 / 0.001 for images (SGD),
            3e-4 / 3e-4 / 3e-5 for feature vectors (Adam).
        optimizer: ``optimizer(stage, learning_rate)`` → a fresh optimiser; default
            ``backbone_optimizer(model.backbone, learning_rate)``: the
            paper's SGD for images, Adam (weight decay 3) for ``backbone="mlp"``.
        metrics: ``metrics()`` → a fresh list of Keras metrics for ``compile``; default
            streaming mAP and O-F1.
        callbacks: extra Keras callbacks, used in every stage.
        bank_data: data for the memory-bank pass at the start of stages 2 and 3 (default:
            ``train_data``); pass an un-augmented copy for exact bank entries.
        reduce_lr_patience: epochs without improvement before the learning rate drops ×0.1.
        backup_dir: make the run resumable: the last completed epoch of the running stage
            and the weights of every finished stage are kept here, and calling
            ``fit_stages`` again with the same arguments continues where a killed run
            stopped (finished stages are skipped). See ``retdm_keras.checkpointing``.
        strategy: the ``tf.distribute`` strategy to train under. The model must have been
            built in its scope (its weights are mirrored at creation); by default the
            strategy the model was built under is used.
        verbose: Keras verbosity; ``"auto"`` (default) shows progress bars on a terminal and
            one line per epoch otherwise (a log file, a pipe, CI).
        freeze_backbone: frozen-backbone training: the pretrained CNN stays frozen in every
            stage, and its pooled features are extracted once (``feature_views`` augmented
            views of each training image, the plain view of the bank and validation data;
            see ``retdm_keras.frozen_features``) instead of being recomputed every step. The
            projection, the heads and the label side train through the same stages and
            losses; the result predicts on raw images like any ``RETDM``. The backbone's
            trainable state is restored afterwards. ``None`` (default):
            :func:`default_freeze_backbone`, i.e. frozen when the image backbone is
            pretrained (``model.image_embedder.pretrained``), trained when it starts from
            random weights or the model reads feature vectors, and fine-tuned (with a
            warning) when the frozen features would not fit in memory
            (:func:`resolve_freeze_backbone`). ``False`` fine-tunes a pretrained backbone
            (see ``docs/method.md``, "Frozen by default").
        feature_views: views per training image (``freeze_backbone`` only): the plain view
            and ``feature_views - 1`` augmented ones; each epoch draws one per image.
        feature_cache: folder of the feature cache (default ``$KERAS_HOME/retdm_features``);
            False extracts without caching.
        baseline: after the stages, fit the tuned per-label logistic regression on the
            training rows and mix it into the predictions with the weight ``β`` that scores
            best on ``val_data`` (0 keeps RETDM alone, 1 is the baseline alone; see
            ``retdm_keras.baseline_blend``); the choice is printed and kept in
            ``model.baseline_choice``. ``None`` (default): when ``val_data`` is given and
            training runs on one device. False trains RETDM alone.
        learning_rate_schedule: ``{stage: [learning rate of each epoch]}`` to replay
            instead of dropping the rate on a plateau (``reduce_lr_patience``) for those
            stages, e.g. the rates a run with validation data ended up using
            (:func:`learning_rates_used`) when the same schedule is retrained on all rows.

    Returns:
        ``{stage: History}`` for the stages that ran in this call.

    Raises:
        NonFiniteLossError: the loss became NaN/Inf; the message names stage, epoch and step.
    """
    if strategy is not None and strategy is not model.distribute_strategy:
        raise ValueError(
            "the model was built outside this strategy's scope: create it inside "
            "`with strategy.scope():` so its weights are mirrored, then call fit_stages"
        )
    verbose = resolve_verbose(verbose)
    check_learning_rate_schedule(learning_rate_schedule, epochs)
    if baseline is None:
        baseline = val_data is not None and strategy is None and not _distributed(model)
    elif baseline and val_data is None:
        raise ValueError("baseline=True chooses the baseline's weight on val_data: pass it")
    if freeze_backbone is None:  # a direct call: the run's one decision (training.policy)
        freeze_backbone = resolve_freeze_backbone(model, train_data, None, feature_views)
    if model.baseline_weight > 0:  # fit for the model as it was: stale once training runs
        if verbose:
            print("RETDM: the baseline mixed in before is dropped (β = 0) for this training")
        model.set_baseline(0.0)
        model.baseline_choice = None
    if learning_rates is None:
        learning_rates = backbone_learning_rates(model.backbone)

    def run(train, val, bank):
        return _fit_stages(
            model,
            train,
            val,
            epochs,
            learning_rates=learning_rates,
            optimizer=optimizer,
            metrics=metrics,
            callbacks=callbacks,
            bank_data=bank,
            reduce_lr_patience=reduce_lr_patience,
            backup_dir=backup_dir,
            verbose=verbose,
            learning_rate_schedule=learning_rate_schedule or {},
        )

    if not freeze_backbone:
        histories = run(train_data, val_data, bank_data)
        if baseline:
            blend_source = bank_data if bank_data is not None else train_data
            _fit_blend(
                model,
                lambda: (
                    *baseline_features(model, blend_source),
                    *baseline_features(model, val_data),
                ),
                verbose,
            )
        return histories
    from retdm_keras.frozen_features import prepare_frozen_data

    list(stage_schedule(epochs, learning_rates))  # a bad schedule fails before the extraction
    frozen = prepare_frozen_data(
        model,
        train_data,
        val_data,
        bank_data,
        views=feature_views,
        cache_dir=feature_cache,
        verbose=verbose,
    )
    embedder = model.image_embedder
    was_frozen, was_trainable = model.freeze_backbone, embedder.backbone.trainable
    model.freeze_backbone = True
    try:
        histories = run(frozen.train, frozen.val, frozen.bank)
        if baseline:
            _fit_blend(
                model,
                lambda: (
                    frozen.bank_features,
                    frozen.bank_labels,
                    frozen.val_features,
                    frozen.val_labels,
                ),
                verbose,
            )
        return histories
    finally:
        model.freeze_backbone = was_frozen
        embedder.set_backbone_trainable(was_trainable)
        model.train_function = model.test_function = model.predict_function = None
        _fresh_optimizer(model, metrics or (lambda: default_metrics(model.num_labels)))


def _distributed(model: RETDM) -> bool:
    """Whether ``model`` was built under a ``tf.distribute`` strategy other than the default."""
    return tf.distribute.has_strategy() or model.distribute_strategy is not (
        tf.distribute.get_strategy()
    )


def _fit_blend(model: RETDM, rows: Callable[[], tuple], verbose: int) -> None:
    """``fit_baseline_blend`` on ``rows()`` (training features and labels, validation
    features and labels) for ``fit_stages``; the choice is kept in ``model.baseline_choice``.
    The trained model is never lost to it: a baseline that cannot be fit (say, validation
    rows without a positive label) warns and leaves RETDM alone."""
    try:
        model.baseline_choice = fit_baseline_blend(model, *rows(), verbose=1 if verbose else 0)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        model.set_baseline(0.0)
        model.baseline_choice = None
        warnings.warn(
            f"the tuned baseline was not mixed in ({error}); the model predicts with RETDM "
            "alone (fit_stages(baseline=False) skips this step)",
            RuntimeWarning,
            stacklevel=3,
        )


def _fresh_optimizer(model: RETDM, metrics: Callable[[], list]) -> None:
    """Re-compile with a fresh copy of the last optimiser, built on the weights trainable
    now: the frozen run's optimiser knew no backbone weights, so a later ``fit`` (or a
    saved file's optimiser) would not match the unfrozen model."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return
    with model.distribute_strategy.scope():
        fresh = type(optimizer).from_config(optimizer.get_config())
        model.compile(optimizer=fresh, metrics=metrics())
        fresh.build(model.trainable_variables)


def _fit_stages(
    model: RETDM,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset | None,
    epochs: Sequence[int],
    *,
    learning_rates: Sequence[float],
    optimizer: Callable[[str, float], keras.optimizers.Optimizer] | None,
    metrics: Callable[[], list] | None,
    callbacks: Sequence[keras.callbacks.Callback],
    bank_data: tf.data.Dataset | None,
    reduce_lr_patience: int,
    backup_dir: str | os.PathLike[str] | None,
    verbose: int,
    learning_rate_schedule: Mapping[str, Sequence[float]],
) -> dict[str, keras.callbacks.History]:
    """The stages of :func:`fit_stages` through ``model.fit`` (arguments checked, verbosity
    resolved): the shared :func:`stages_to_run` hands each stage over compiled."""
    make_metrics = metrics or (lambda: default_metrics(model.num_labels))
    monitor = "val_loss" if val_data is not None else "loss"
    histories: dict[str, keras.callbacks.History] = {}
    records = StageRecords(backup_dir) if backup_dir is not None else None
    finished = records.finished() if records else []
    if records and finished:
        restored = records.restore(model)
        if verbose:
            print(f"RETDM: resuming after stage {restored!r} (from {backup_dir})")
    for run in stages_to_run(
        model,
        train_data,
        epochs,
        learning_rates,
        optimizer=optimizer,
        metrics=make_metrics,
        bank_data=bank_data,
        finished=finished,
        verbose=verbose,
    ):
        schedule = learning_rate_callback(
            learning_rate_schedule.get(run.stage),
            initial_epoch=run.initial_epoch,
            monitor=monitor,
            patience=reduce_lr_patience,
        )
        guards: list[keras.callbacks.Callback] = [StopOnNonFiniteLoss(run.stage, backup_dir)]
        if records is not None:
            guards.append(keras.callbacks.BackupAndRestore(records.stage_dir(run.stage)))
        if verbose:
            print(
                f"RETDM stage {run.stage!r}: {run.epochs} epochs, learning rate {run.learning_rate}"
            )
        histories[run.stage] = model.fit(
            train_data,
            validation_data=val_data,
            epochs=run.initial_epoch + run.epochs,
            initial_epoch=run.initial_epoch,
            callbacks=[*guards, schedule, *callbacks],
            verbose=verbose,
        )
        if records is not None:
            records.mark_finished(run.stage, model)
    return histories
