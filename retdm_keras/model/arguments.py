"""The checks of ``RETDM``'s constructor arguments (the loss's are ``LossConfig``'s).

Each returns the value as the model stores it, or raises a ``ValueError`` that names the
argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def one_of(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value``, one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def unit_interval(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]``."""
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """``value`` as a float ``> 0``."""
    if float(value) <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def label_names_for(label_names: Sequence[str] | None, num_labels: int) -> list[str] | None:
    """``label_names`` as a list of ``num_labels`` names, or None."""
    if label_names is None:
        return None
    if len(label_names) != num_labels:
        raise ValueError(f"label_names has {len(label_names)} names but num_labels is {num_labels}")
    return list(label_names)


def thresholds_for(thresholds: Any, num_labels: int) -> float | list[float] | None:
    """``thresholds`` as one float or ``num_labels`` floats, or None."""
    if thresholds is None:
        return None
    values = np.atleast_1d(np.asarray(thresholds, dtype="float32"))
    if values.size not in (1, num_labels) or values.ndim != 1:
        raise ValueError(
            f"thresholds must be one value or {num_labels} values, got shape {np.shape(thresholds)}"
        )
    if values.size == 1:
        return float(values[0])
    return [float(t) for t in values]


def top_k_for(top_k: Any, num_labels: int) -> int | None:
    """``top_k`` as an int in ``1..num_labels``, or None."""
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
        raise ValueError(f"top_k must be an integer or None, got {top_k!r}")
    if not 1 <= top_k <= num_labels:
        raise ValueError(f"top_k must be in 1..{num_labels} (num_labels), got {top_k}")
    return int(top_k)
