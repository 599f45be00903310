"""The optimizers and metrics each stage is compiled with: by name, and the defaults."""

from __future__ import annotations

from collections.abc import Callable

import keras

from retdm_keras.optimizer_defaults import (
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    default_optimizer_name,
    default_weight_decay,
)

__all__ = [
    "OptimizerFactory",
    "backbone_optimizer",
    "default_metrics",
    "default_optimizer",
    "make_optimizer",
]

OptimizerFactory = Callable[[str, float], keras.optimizers.Optimizer]


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
) -> keras.optimizers.Optimizer:
    """A fresh optimiser by name: SGD (with ``momentum``), Adam or AdamW; ``weight_decay`` is
    Keras's decoupled decay (0 disables it, except for AdamW, which needs it). Adam and AdamW
    leave biases undecayed: the classification head's bias holds each label's prior."""
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay or None
        )
    if name == "adam":
        optimizer = keras.optimizers.Adam(
            learning_rate=learning_rate, weight_decay=weight_decay or None
        )
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def backbone_optimizer(backbone: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimiser ``fit_stages`` gives a stage of a model with this backbone by default
    (:func:`default_optimizer_name`, made by :func:`make_optimizer` with
    :func:`default_weight_decay`: 1e-4 for images' SGD, 3 for feature vectors' Adam)."""
    name = default_optimizer_name(backbone)
    return make_optimizer(name, learning_rate, weight_decay=default_weight_decay(name, backbone))


def default_optimizer(learning_rate: float = 0.01) -> keras.optimizers.Optimizer:
    """The paper's optimiser: SGD, momentum 0.9, weight decay 1e-4."""
    return make_optimizer("sgd", learning_rate)


def default_metrics(num_labels: int) -> list[keras.metrics.Metric]:
    """Streaming mAP and O-F1, logged during training and validation."""
    from retdm_keras.metrics import MeanAveragePrecision, OverallF1

    return [MeanAveragePrecision(num_labels), OverallF1()]
