"""The start of each stage: freeze its parts, fill the memory bank, compile."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from retdm_keras.model import RETDM
from retdm_keras.training.optimizers import OptimizerFactory, backbone_optimizer

__all__ = ["begin_stage"]


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
