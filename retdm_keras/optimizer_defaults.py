"""The default optimiser and learning rates by input, without TensorFlow (the command line
and the recipe schema read them before anything is imported).

Images train with the paper's optimiser, SGD (momentum 0.9, weight decay 1e-4) at 0.01 /
0.01 / 0.001 per stage (classifier, metric, joint). Feature vectors (``backbone="mlp"``) train
with Adam (weight decay 1e-4) at 3e-4 / 3e-4 / 3e-5 (ours): on sparse or many-label feature
data SGD's rates leave the network under-trained (``docs/method.md``).
"""

from __future__ import annotations

OPTIMIZERS = ("sgd", "adam", "adamw")
"""The optimisers ``retdm_keras.training.make_optimizer`` makes by name."""

DEFAULT_LEARNING_RATES = (0.01, 0.01, 0.001)
"""SGD's learning rates per stage (classifier, metric, joint): the paper's optimiser."""

ADAM_LEARNING_RATES = (3e-4, 3e-4, 3e-5)
"""Adam's (and AdamW's) learning rates per stage: the default for feature vectors."""


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
