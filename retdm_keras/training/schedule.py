"""The stage schedule (epochs and learning rate per stage) and the learning rate within a
stage: dropped on a plateau, or replayed epoch by epoch (``learning_rate_schedule``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import keras
import numpy as np

from retdm_keras.model import STAGES

__all__ = [
    "check_learning_rate_schedule",
    "learning_rate_callback",
    "learning_rates_used",
    "stage_schedule",
]


def stage_schedule(
    epochs: Sequence[int], learning_rates: Sequence[float]
) -> Iterator[tuple[str, int, float]]:
    """``(stage, epochs, learning rate)`` for each stage that runs (0 epochs skips one)."""
    if len(epochs) != len(STAGES) or len(learning_rates) != len(STAGES):
        raise ValueError(
            f"epochs and learning_rates need one value per stage {STAGES}, got "
            f"{tuple(epochs)} and {tuple(learning_rates)}"
        )
    for stage, stage_epochs, learning_rate in zip(STAGES, epochs, learning_rates, strict=True):
        if stage_epochs > 0:
            yield stage, int(stage_epochs), float(learning_rate)


def check_learning_rate_schedule(
    schedule: Mapping[str, Sequence[float]] | None, epochs: Sequence[int]
) -> None:
    """Raise a ``ValueError`` unless ``schedule`` (``fit_stages``' ``learning_rate_schedule``)
    names known stages, each with one positive, finite rate per epoch of ``epochs``."""
    for stage, rates in (schedule or {}).items():
        if stage not in STAGES:
            raise ValueError(f"learning_rate_schedule: unknown stage {stage!r}; stages: {STAGES}")
        stage_epochs = epochs[STAGES.index(stage)]
        if len(rates) != stage_epochs:
            raise ValueError(
                f"learning_rate_schedule[{stage!r}] has {len(rates)} rates for "
                f"{stage_epochs} epochs"
            )
        if not all(np.isfinite(rate) and rate > 0 for rate in rates):
            raise ValueError(f"learning_rate_schedule[{stage!r}]: rates must be > 0")


def learning_rate_callback(
    rates: Sequence[float] | None,
    *,
    initial_epoch: int,
    monitor: str,
    patience: int,
) -> keras.callbacks.Callback:
    """The callback that sets a stage's learning rate: ×0.1 after ``patience`` epochs
    without improvement of ``monitor`` when ``rates`` is None, else ``rates[i]`` in the
    stage's ``i``-th epoch (Keras numbers epochs across stages, from ``initial_epoch``)."""
    if rates is None:
        return keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.1, patience=patience, verbose=0
        )
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _, rates=rates, start=initial_epoch: float(rates[epoch - start])
    )


def learning_rates_used(
    histories: Mapping[str, keras.callbacks.History],
) -> dict[str, list[float]]:
    """``{stage: [learning rate of each epoch]}`` of a :func:`fit_stages` run (its return
    value): what the plateau schedule chose, to replay with ``learning_rate_schedule``."""
    return {
        stage: [float(rate) for rate in history.history.get("learning_rate", [])]
        for stage, history in histories.items()
        if history.history.get("learning_rate")
    }
