"""The stage loop every training path shares.

:func:`stages_to_run` is the sequence that ``fit_stages`` (Keras ``model.fit``: one device
or ``MirroredStrategy``) and ``fit_stages_multiworker`` (its own distributed loop) both
follow: feature standardization for ``backbone="mlp"`` (``model.adapt``), the stage schedule
(:func:`~retdm_keras.training.schedule.stage_schedule`), stages a resumed run finished
before, stages that train nothing (``model.stage_trains``) skipped with a message, and
:func:`begin_stage` with the memory bank filled from ``bank_data`` (default the training
data). What each path does with a stage it is handed, running its epochs, is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import tensorflow as tf

from retdm_keras.model import RETDM
from retdm_keras.training.optimizers import OptimizerFactory, backbone_optimizer
from retdm_keras.training.schedule import stage_schedule

__all__ = ["StageRun", "begin_stage", "stages_to_run"]


@dataclass(frozen=True)
class StageRun:
    """A stage ready to train: :func:`begin_stage` has compiled the model for it."""

    stage: str
    """``"classifier"``, ``"metric"`` or ``"joint"``."""
    epochs: int
    """Epochs of this stage."""
    learning_rate: float
    """Its initial learning rate."""
    initial_epoch: int
    """Epochs of the finished stages before it: Keras numbers epochs across stages."""


def begin_stage(
    model: RETDM,
    stage: str,
    learning_rate: float,
    *,
    optimizer: OptimizerFactory | None = None,
    metrics: Callable[[], list] | None = None,
    bank_data: tf.data.Dataset | None = None,
) -> None:
    """Freeze the stage's parts, attach the training set if needed, and compile.

    The optimiser (``optimizer(stage, learning_rate)``, default
    :func:`backbone_optimizer`), the
    metrics (``metrics()``) and the memory bank are all created in the scope of the model's
    own strategy (the one it was built under), so they are mirrored like the weights (a
    Keras optimiser binds to the strategy current when it is constructed).
    """
    model.set_stage(stage)
    with model.distribute_strategy.scope():
        if stage != "classifier":
            if bank_data is None:
                raise ValueError(f"stage {stage!r} needs the training data for the memory bank")
            # Neighbour index + a fresh pass of f over the training images into the bank.
            model.prepare_training(bank_data)
        if optimizer is None:
            new_optimizer = backbone_optimizer(model.backbone, learning_rate)
        else:
            new_optimizer = optimizer(stage, learning_rate)
        model.compile(optimizer=new_optimizer, metrics=metrics() if metrics else None)


def stages_to_run(
    model: RETDM,
    train_data: tf.data.Dataset,
    epochs: Sequence[int],
    learning_rates: Sequence[float],
    *,
    optimizer: OptimizerFactory | None = None,
    metrics: Callable[[], list] | None = None,
    bank_data: tf.data.Dataset | None = None,
    finished: Collection[str] = (),
    verbose: int = 0,
) -> Iterator[StageRun]:
    """Adapt the model, then yield each stage to train, compiled, in order.

    Args:
        model: a ``RETDM`` (built under the strategy it trains with).
        train_data: the training batches; read here only when ``bank_data`` is None.
        epochs: ``(e1, e2, e3)`` epochs per stage; 0 skips a stage.
        learning_rates: the initial learning rate per stage.
        optimizer: ``optimizer(stage, learning_rate)`` for :func:`begin_stage`.
        metrics: ``metrics()`` for :func:`begin_stage` (None compiles without metrics).
        bank_data: data for feature standardization and the memory-bank pass (default
            ``train_data``).
        finished: stages a resumed run has already trained: skipped, their epochs counted
            in the next stage's ``initial_epoch``.
        verbose: print a line for each stage skipped because it trains nothing.

    Yields:
        a :class:`StageRun` per stage to train, after :func:`begin_stage`; the caller runs
        its epochs before asking for the next one.
    """
    bank = bank_data if bank_data is not None else train_data
    if model.needs_adaptation:  # "mlp": feature standardization from the training features
        model.adapt(bank)
    initial_epoch = 0
    for stage, stage_epochs, learning_rate in stage_schedule(epochs, learning_rates):
        if stage in finished:
            initial_epoch += stage_epochs
            continue
        if not model.stage_trains(stage):
            if verbose:
                print(f"RETDM stage {stage!r}: skipped (λ = μ = 0, nothing to train)")
            continue
        begin_stage(
            model, stage, learning_rate, optimizer=optimizer, metrics=metrics, bank_data=bank
        )
        yield StageRun(stage, stage_epochs, learning_rate, initial_epoch)
        initial_epoch += stage_epochs
