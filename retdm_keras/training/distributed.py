"""Training RETDM on several devices and several machines.

**One machine, N GPUs (or logical CPUs).** Build the model under a ``MirroredStrategy`` scope;
``fit_stages`` then creates the optimiser, metrics and memory bank in the same scope and
``model.fit`` distributes each global batch::

    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = RETDM(num_labels, backbone="mobilenet_v2", weights="imagenet")
    fit_stages(model, train_ds, val_ds, epochs=(4, 1, 2))   # train_ds batched globally

The training step divides each replica's mean loss by the number of replicas (the optimiser
sums gradients across replicas), and memory-bank writes all-gather every replica's share,
so one step under the strategy equals one step on one device over the same global batch
(``tests/test_distributed.py``).

**Several machines.** ``model.fit`` under ``MultiWorkerMirroredStrategy`` is broken in
Keras 3 (keras-team/keras#20585), so ``fit_stages_multiworker`` runs the same three stages
(the stage loop ``fit_stages`` uses, :func:`~retdm_keras.training.stage_loop.stages_to_run`)
with its own epochs over ``strategy.experimental_distribute_dataset`` and ``strategy.run``,
reusing ``RETDM.train_step``. Every worker runs the same script with its own ``TF_CONFIG``::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python train.py

Each worker reads the whole dataset batched by the *global* batch size; the strategy hands
each worker its share of every batch. Only the chief (worker 0) writes checkpoints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from retdm_keras.model import RETDM
from retdm_keras.optimizer_defaults import backbone_learning_rates
from retdm_keras.training.stage_loop import stages_to_run

__all__ = [
    "STRATEGIES",
    "distribute_by_data",
    "fit_stages_multiworker",
    "is_chief",
    "make_strategy",
]

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name: ``default``, ``mirrored`` or ``multiworker``."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "the multiworker strategy needs TF_CONFIG describing the cluster, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True on the worker that writes checkpoints (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def distribute_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard a globally batched dataset by data across workers (every worker reads it all)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _train_epoch(model: RETDM, step, distributed_data) -> dict[str, float]:
    model.reset_metrics()
    for batch in distributed_data:
        step(batch)
    return {name: float(value) for name, value in model.stage_logs().items()}


def fit_stages_multiworker(
    model: RETDM,
    train_data: tf.data.Dataset,
    epochs: Sequence[int] = (10, 5, 10),
    *,
    learning_rates: Sequence[float] | None = None,
    optimizer: Callable[[str, float], keras.optimizers.Optimizer] | None = None,
    bank_data: tf.data.Dataset | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    verbose: int = 1,
) -> dict[str, list[dict[str, float]]]:
    """The three stages with a custom distributed loop (works under MultiWorkerMirrored).

    Args:
        model: a ``RETDM`` built under the strategy's scope.
        train_data: batches of the *global* batch size, with ``x["index"]``.
        epochs: ``(e1, e2, e3)`` epochs per stage; 0 skips a stage.
        learning_rates: learning rate per stage; default as in ``fit_stages``.
        optimizer: ``optimizer(stage, learning_rate)``; default as in ``fit_stages`` (the
            paper's SGD for images, Adam for feature vectors).
        bank_data: data for the memory-bank pass (default ``train_data``).
        checkpoint_dir: the chief writes ``<stage>-epoch<N>.weights.h5`` and
            ``history.json`` here after every epoch.
        verbose: print one line per epoch, and one per stage skipped because it trains
            nothing (on the chief only).

    Returns:
        ``{stage: [logs per epoch]}``.
    """
    if learning_rates is None:
        learning_rates = backbone_learning_rates(model.backbone)
    strategy = model.distribute_strategy
    distributed = strategy.experimental_distribute_dataset(distribute_by_data(train_data))
    chief = is_chief(strategy)
    history: dict[str, list[dict[str, float]]] = {}
    for run in stages_to_run(
        model,
        train_data,
        epochs,
        learning_rates,
        optimizer=optimizer,
        bank_data=bank_data,
        verbose=1 if verbose and chief else 0,
    ):
        stage, stage_epochs = run.stage, run.epochs
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)

        @tf.function
        def step(batch):
            strategy.run(model.train_step, args=(batch,))

        history[stage] = []
        for epoch in range(stage_epochs):
            logs = _train_epoch(model, step, distributed)
            history[stage].append(logs)
            if verbose and chief:
                shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"stage {stage!r} epoch {epoch + 1}/{stage_epochs} - {shown}")
            if checkpoint_dir is not None and chief:
                folder = Path(checkpoint_dir)
                folder.mkdir(parents=True, exist_ok=True)
                model.save_weights(folder / f"{stage}-epoch{epoch + 1}.weights.h5")
                (folder / "history.json").write_text(json.dumps(history, indent=2))
    return history
