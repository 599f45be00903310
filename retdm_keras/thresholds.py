"""Decision-threshold calibration: turn label probabilities into label sets.

A RETDM model outputs one probability per label. Predicting "label ``j`` is present when
``p_j >= 0.5``" is only a default: with rare labels, or a model that is systematically under-
or over-confident, another cut-off gives a much better F1. ``calibrate`` picks the cut-off on a
*validation* set (never on the test set) with one of three rules:

``"per_class_f1"``
    One threshold per label, each maximising that label's F1 on the validation set. The
    candidates of a label are the midpoints between its consecutive distinct validation scores
    (each midpoint is one distinct way of splitting the samples) plus its lowest score
    ("predict every sample"); or the values of ``grid``. Among equally good candidates the one
    closest to 0.5 wins. A label without any validation positive keeps 0.5 (its F1 is 0
    whatever the threshold). This does not maximise C-F1 itself (the harmonic mean of C-P and
    C-R, see ``metrics``) but usually raises it, helping rare labels most.
``"global_f1"``
    One threshold for all labels maximising the overall (micro) F1, O-F1, over all
    (sample, label) pairs pooled — the same search on the flattened scores.
``"top_k"``
    Not a threshold but a rule: every image gets exactly its ``k`` highest-scoring labels.
    ``k`` is given, or chosen in ``1..C`` to maximise O-F1 on the validation set (ties: the
    smaller ``k``). Useful when nearly every image carries about the same number of labels.

The result is a frozen ``Thresholds`` value: ``apply(scores)`` gives 0/1 predictions,
``to_config``/``from_config`` make it JSON-friendly, and ``apply_to_model`` stores the rule
in the model — thresholds in ``model.thresholds``, a ``"top_k"`` rule's ``k`` in
``model.top_k`` — so it is saved in the ``.keras`` file and used by ``model.predict_labels``.
``compare_thresholds`` reports the threshold-based metrics at 0.5 next to the calibrated rule,
ready for ``metrics.format_table``.

Thresholds are chosen so that they still separate the same scores after a cast to float32
(the precision RETDM stores them in).

Example:

>>> import numpy as np
>>> y_val = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
>>> p_val = np.array([[0.9, 0.2], [0.4, 0.1], [0.3, 0.35], [0.1, 0.3]])
>>> t = calibrate(y_val, p_val, "per_class_f1")
>>> [round(v, 3) for v in t.values]
[0.35, 0.325]
>>> t.apply(p_val)
array([[1, 0],
       [1, 0],
       [0, 1],
       [0, 0]], dtype=int32)
>>> calibrate(y_val, p_val, "top_k", k=1).apply(p_val).sum(axis=1)
array([1, 1, 1, 1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retdm_keras.metrics import evaluate

__all__ = ["METHODS", "Thresholds", "apply_to_model", "calibrate", "compare_thresholds"]

METHODS: tuple[str, ...] = ("per_class_f1", "global_f1", "top_k")
"""The calibration rules understood by ``calibrate``."""

DEFAULT_THRESHOLD = 0.5
THRESHOLD_METRICS: tuple[str, ...] = ("C-P", "C-R", "C-F1", "O-P", "O-R", "O-F1", "hamming_loss")
"""The metrics of ``evaluate`` that depend on the decision rule (reported by
``compare_thresholds``)."""


@dataclass(frozen=True)
class Thresholds:
    """A calibrated decision rule.

    Args:
        method: one of ``METHODS``.
        values: ``C`` thresholds (``"per_class_f1"``), one threshold (``"global_f1"``), or
            ``None`` (``"top_k"``).
        k: labels per image for ``"top_k"``, else ``None``.
    """

    method: str
    values: tuple[float, ...] | float | None = None
    k: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "per_class_f1":
            if self.values is None or np.ndim(self.values) != 1 or len(self.values) == 0:
                raise ValueError("'per_class_f1' needs one threshold per label in values")
            object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        elif self.method == "global_f1":
            if self.values is None or np.ndim(self.values) != 0:
                raise ValueError("'global_f1' needs a single threshold in values")
            object.__setattr__(self, "values", float(self.values))
        else:
            if self.values is not None:
                raise ValueError("'top_k' is a rule, not a threshold: values must be None")
            if self.k is None or int(self.k) < 1:
                raise ValueError(f"'top_k' needs k >= 1, got {self.k!r}")
            object.__setattr__(self, "k", int(self.k))
        if self.method != "top_k" and self.k is not None:
            raise ValueError(f"k is only used by 'top_k', not {self.method!r}")

    def apply(self, scores: Any) -> np.ndarray:
        """0/1 predictions ``(N, C)`` (int32) for scores ``(N, C)``."""
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 2:
            raise ValueError(f"scores must be 2-D (N, C), got shape {s.shape}")
        if self.method == "top_k":
            if self.k > s.shape[1]:
                raise ValueError(f"k={self.k} is larger than the number of labels {s.shape[1]}")
            return _top_k_predictions(s, self.k).astype(np.int32)
        if self.method == "per_class_f1" and len(self.values) != s.shape[1]:
            raise ValueError(
                f"{len(self.values)} per-class thresholds for scores with {s.shape[1]} labels"
            )
        return (s >= np.asarray(self.values, dtype=np.float64)).astype(np.int32)

    def for_model(self) -> float | list[float]:
        """The value for ``RETDM(thresholds=...)`` / ``model.thresholds``.

        Raises:
            ValueError: for ``"top_k"``, which is not a threshold.
        """
        if self.method == "top_k":
            raise ValueError(
                "a 'top_k' rule is not a threshold: store it with apply_to_model(model, rule) "
                "(sets model.top_k), or apply it with Thresholds.apply(model.predict(x))"
            )
        if self.method == "global_f1":
            return float(self.values)
        return list(self.values)

    def to_config(self) -> dict[str, Any]:
        """A JSON-serialisable dict; ``Thresholds.from_config`` inverts it."""
        values = list(self.values) if isinstance(self.values, tuple) else self.values
        return {"method": self.method, "values": values, "k": self.k}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        """The ``Thresholds`` described by ``to_config``'s dict."""
        return cls(config["method"], config.get("values"), config.get("k"))


# --------------------------------------------------------------------------- #
# Search
# --------------------------------------------------------------------------- #
def _float32_safe(threshold: float, lowest_kept: float, highest_dropped: float | None) -> float:
    """``threshold`` rounded to float32, moved to ``lowest_kept`` if the rounding would change
    which scores it separates."""
    t32 = float(np.float32(threshold))
    low_ok = t32 <= lowest_kept
    high_ok = highest_dropped is None or t32 > highest_dropped
    if low_ok and high_ok:
        return t32
    return float(np.float32(lowest_kept)) if np.float32(lowest_kept) == lowest_kept else threshold


def _candidates(y: np.ndarray, s: np.ndarray, grid: np.ndarray | None):
    """Candidate thresholds and the F1 of ``s >= t`` for each (1-D ``y`` bool, ``s`` float)."""
    num_pos = int(y.sum())
    if grid is not None:
        order = np.argsort(s, kind="stable")
        s_asc, y_asc = s[order], y[order]
        below = np.searchsorted(s_asc, grid, side="left")  # samples with s < t
        pos_below = np.concatenate([[0], np.cumsum(y_asc)])[below]
        predicted = len(s) - below
        tp = num_pos - pos_below
        return grid.astype(np.float64), 2.0 * tp / (predicted + num_pos)
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    tp = np.cumsum(y_desc)
    # one candidate per group of equal scores: predict everything down to the group's end
    ends = np.flatnonzero(np.append(s_desc[:-1] != s_desc[1:], True))
    kept = s_desc[ends]  # lowest score still predicted
    dropped = np.append(s_desc[ends[:-1] + 1], np.nan)  # highest score not predicted
    thresholds = np.empty(len(ends))
    for i, (low, high) in enumerate(zip(kept, dropped, strict=True)):
        if np.isnan(high):  # the last group: predict every sample
            thresholds[i] = _float32_safe(low, low, None)
        else:
            thresholds[i] = _float32_safe((low + high) / 2.0, low, high)
    f1 = 2.0 * tp[ends] / (ends + 1 + num_pos)
    return thresholds, f1


def _best_threshold(y: np.ndarray, s: np.ndarray, grid: np.ndarray | None) -> float:
    """The F1-maximising threshold; ties → closest to 0.5 (then the higher one)."""
    if not y.any():
        return DEFAULT_THRESHOLD
    thresholds, f1 = _candidates(y, s, grid)
    best = np.flatnonzero(f1 == f1.max())
    distance = np.abs(thresholds[best] - DEFAULT_THRESHOLD)
    closest = best[distance == distance.min()]
    return float(thresholds[closest].max())


def _top_k_predictions(s: np.ndarray, k: int) -> np.ndarray:
    """Boolean ``(N, C)``: the ``k`` highest scores of each row (ties → lower label index)."""
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    chosen = np.zeros(s.shape, dtype=bool)
    np.put_along_axis(chosen, order, True, axis=1)
    return chosen


def _best_k(y: np.ndarray, s: np.ndarray) -> int:
    """The ``k`` in ``1..C`` maximising O-F1 of the top-k rule (ties → smaller ``k``)."""
    n, c = y.shape
    order = np.argsort(-s, axis=1, kind="stable")
    hits = np.take_along_axis(y, order, axis=1).sum(axis=0)  # positives at each rank
    tp = np.cumsum(hits)  # ΣTP of top-1, top-2, ...
    f1 = 2.0 * tp / (n * np.arange(1, c + 1) + y.sum())
    return int(np.argmax(f1)) + 1


def _check(y_val: Any, p_val: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_val)
    s = np.asarray(p_val, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape or y.size == 0:
        raise ValueError(
            f"y_val and p_val must be non-empty (N, C) arrays of the same shape, got "
            f"{y.shape} and {s.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_val must contain only 0/1 values")
    if not np.isfinite(s).all():
        raise ValueError("p_val must be finite")
    return y.astype(bool), s


def calibrate(
    y_val: Any,
    p_val: Any,
    method: str = "per_class_f1",
    *,
    k: int | None = None,
    grid: Sequence[float] | np.ndarray | None = None,
) -> Thresholds:
    """Choose a decision rule on validation labels ``y_val`` and scores ``p_val`` ``(N, C)``.

    Args:
        y_val: 0/1 validation labels ``(N, C)``.
        p_val: validation scores ``(N, C)``, usually ``model.predict(val_images)``.
        method: ``"per_class_f1"``, ``"global_f1"`` or ``"top_k"`` (see the module docstring).
        k: for ``"top_k"``: labels per image; ``None`` chooses it on the validation set.
        grid: candidate thresholds (e.g. ``np.linspace(0.05, 0.95, 19)``) instead of the
            midpoints between validation scores; not used by ``"top_k"``.

    Returns:
        A ``Thresholds``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    y, s = _check(y_val, p_val)
    if grid is not None:
        grid = np.unique(np.asarray(grid, dtype=np.float64).ravel())
        if grid.size == 0 or not np.isfinite(grid).all():
            raise ValueError("grid must hold at least one finite threshold")
    if method == "per_class_f1":
        values = [_best_threshold(y[:, j], s[:, j], grid) for j in range(y.shape[1])]
        return Thresholds(method, tuple(values))
    if method == "global_f1":
        return Thresholds(method, _best_threshold(y.ravel(), s.ravel(), grid))
    if k is None:
        k = _best_k(y, s)
    elif not 1 <= int(k) <= y.shape[1]:
        raise ValueError(f"k must be in 1..{y.shape[1]}, got {k}")
    return Thresholds(method, None, int(k))


def apply_to_model(model: Any, thresholds: Thresholds | float | Sequence[float]) -> None:
    """Store a decision rule in a ``RETDM``, replacing the one it had.

    Thresholds (a ``"per_class_f1"``/``"global_f1"`` rule, or plain values) go to
    ``model.thresholds`` and clear ``model.top_k``; a ``"top_k"`` rule sets ``model.top_k = k``
    and clears ``model.thresholds``. Saved with the model (``get_config``) and used by
    ``model.predict_labels``.

    Raises:
        ValueError: for a wrong number of thresholds, or ``k`` above the number of labels.
    """
    if isinstance(thresholds, Thresholds) and thresholds.method == "top_k":
        if thresholds.k > model.num_labels:
            raise ValueError(
                f"k={thresholds.k} is larger than the model's number of labels {model.num_labels}"
            )
        model.top_k = thresholds.k
        model.thresholds = None
        return
    value = thresholds.for_model() if isinstance(thresholds, Thresholds) else thresholds
    values = np.atleast_1d(np.asarray(value, dtype=np.float32))
    if values.ndim != 1 or values.size not in (1, model.num_labels):
        raise ValueError(
            f"thresholds must be one value or {model.num_labels} values, got shape "
            f"{np.shape(value)}"
        )
    model.thresholds = float(values[0]) if np.ndim(value) == 0 else [float(v) for v in values]
    model.top_k = None


def compare_thresholds(
    y_test: Any, p_test: Any, thresholds: Thresholds
) -> dict[str, dict[str, float]]:
    """Threshold-based test metrics at 0.5 and with ``thresholds``.

    Returns:
        ``{"0.5": {...}, thresholds.method: {...}}``, each with the metrics of
        ``THRESHOLD_METRICS`` — a shape ``metrics.format_table`` prints as two columns.
    """
    y, s = _check(y_test, p_test)
    default = evaluate(y, s, DEFAULT_THRESHOLD)
    # the 0/1 predictions are scores that a 0.5 threshold turns back into themselves
    calibrated = evaluate(y, thresholds.apply(s).astype(np.float64), DEFAULT_THRESHOLD)
    return {
        "0.5": {name: default[name] for name in THRESHOLD_METRICS},
        thresholds.method: {name: calibrated[name] for name in THRESHOLD_METRICS},
    }
