"""The default optimiser and learning rates by input, without TensorFlow (the command line
and the recipe schema read them before anything is imported).

Images train with the paper's optimiser, SGD (momentum 0.9, weight decay 1e-4) at 0.01 /
0.01 / 0.001 per stage (classifier, metric, joint). Feature vectors (``backbone="mlp"``) train
with Adam at 3e-4 / 3e-4 / 3e-5 and decoupled weight decay 3 (ours; see ``docs/method.md``,
"Adam for feature vectors" and "Weight decay for feature vectors").
"""

from __future__ import annotations

OPTIMIZERS = ("sgd", "adam", "adamw")
"""The optimisers ``retdm_keras.training.make_optimizer`` makes by name."""

DEFAULT_LEARNING_RATES = (0.01, 0.01, 0.001)
"""SGD's learning rates per stage (classifier, metric, joint): the paper's optimiser."""

ADAM_LEARNING_RATES = (3e-4, 3e-4, 3e-5)
"""Adam's (and AdamW's) learning rates per stage: the default for feature vectors."""


DEFAULT_WEIGHT_DECAY = 1e-4
"""Decoupled weight decay of the paper's SGD, and of any optimiser training images."""

FEATURE_WEIGHT_DECAY = 3.0
"""Decoupled weight decay of Adam / AdamW on feature vectors (``backbone="mlp"``). Keras
multiplies it by the learning rate, so at 3e-4 each step shrinks the weights by 0.09 %; as
Adam's own steps are about the learning rate, a weight that the gradient keeps pushing settles
near ``1 / 3``, where the two balance."""


def default_weight_decay(optimizer: str, backbone: str) -> float:
    """The weight decay a named optimiser gets by default for a backbone:
    :data:`FEATURE_WEIGHT_DECAY` for Adam / AdamW on feature vectors (``"mlp"``), else
    :data:`DEFAULT_WEIGHT_DECAY` (the paper's; a pretrained CNN must not be decayed away)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if backbone == "mlp" and optimizer in ("adam", "adamw"):
        return FEATURE_WEIGHT_DECAY
    return DEFAULT_WEIGHT_DECAY


def default_optimizer_name(backbone: str) -> str:
    """The optimiser ``fit_stages`` uses for a backbone by default: ``"adam"`` for feature
    vectors (``"mlp"``), ``"sgd"`` (the paper's) for images."""
    return "adam" if backbone == "mlp" else "sgd"


def default_learning_rates(optimizer: str) -> tuple[float, float, float]:
    """Learning rates per stage for a named optimiser (``OPTIMIZERS``) when none are given."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    return DEFAULT_LEARNING_RATES if optimizer == "sgd" else ADAM_LEARNING_RATES


def backbone_learning_rates(backbone: str) -> tuple[float, float, float]:
    """The learning rates per stage ``fit_stages`` uses for a backbone when none are given:
    those of its default optimiser (:func:`default_optimizer_name`)."""
    return default_learning_rates(default_optimizer_name(backbone))
