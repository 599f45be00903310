"""Streaming Keras metrics for ``model.compile(metrics=[...])``.

:class:`MeanAveragePrecision` and :class:`OverallF1` are ``keras.metrics.Metric``
subclasses; their states are plain sums, so they are safe under distribution strategies
and across batches.  Both are registered as ``retdm_keras>MeanAveragePrecision`` and
``retdm_keras>OverallF1``, the names saved models' compile configs refer to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops


def _broadcast_weight(sample_weight: Any, like: Any, dtype: str) -> Any:
    """Return sample weights broadcast to the shape of ``like`` (N, C)."""
    if sample_weight is None:
        return ops.ones_like(like)
    w = ops.cast(sample_weight, dtype)
    if len(w.shape) == 1:
        w = ops.expand_dims(w, -1)
    return ops.broadcast_to(w, ops.shape(like))


@keras.saving.register_keras_serializable(package="retdm_keras")
class MeanAveragePrecision(keras.metrics.Metric):
    """Streaming mAP: per-label average precision averaged over labels.

    Scores (expected in ``[0, 1]``; values outside are clipped) are bucketed
    into ``num_thresholds`` equal-width bins, and per label the (weighted)
    counts of positive and negative samples falling in each bin are
    accumulated.  The result is the step-wise AP ``sum_k (R_k - R_{k-1}) P_k``
    over the bin edges, from the highest bin down, averaged over labels that
    have at least one positive so far.  This equals the exact mAP of
    :func:`evaluate` on scores quantised to the bins, so it is an approximation
    that converges to the exact value as ``num_thresholds`` grows.  Memory is
    ``2 * num_thresholds * num_labels`` and state variables are sums.  Returns
    0.0 while no label has a positive (keeps training logs finite).

    Args:
        num_labels: number of labels ``C`` (last dimension of ``y_true``).
        num_thresholds: number of score bins (>= 2).
        name: metric name in the training logs.
        dtype: dtype of the state and result.
    """

    def __init__(
        self,
        num_labels: int,
        num_thresholds: int = 200,
        name: str = "mAP",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if int(num_labels) < 1:
            raise ValueError(f"num_labels must be >= 1; got {num_labels}")
        if int(num_thresholds) < 2:
            raise ValueError(f"num_thresholds must be >= 2; got {num_thresholds}")
        self.num_labels = int(num_labels)
        self.num_thresholds = int(num_thresholds)
        shape = (self.num_thresholds, self.num_labels)
        self.pos_counts = self.add_variable(shape=shape, initializer="zeros", name="pos_counts")
        self.neg_counts = self.add_variable(shape=shape, initializer="zeros", name="neg_counts")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate a batch of ``(batch, num_labels)`` labels and probabilities."""
        y_true = ops.reshape(ops.cast(y_true, self.dtype), (-1, self.num_labels))
        y_pred = ops.reshape(ops.cast(y_pred, self.dtype), (-1, self.num_labels))
        w = _broadcast_weight(sample_weight, y_true, self.dtype)
        t = self.num_thresholds
        bins = ops.cast(ops.floor(ops.clip(y_pred, 0.0, 1.0) * t), "int32")
        bins = ops.minimum(bins, t - 1)
        # flat segment id = bin * C + label, so a reshape gives (T, C)
        seg = bins * self.num_labels + ops.arange(self.num_labels, dtype="int32")
        seg = ops.reshape(seg, (-1,))
        n_seg = t * self.num_labels
        pos = ops.segment_sum(ops.reshape(w * y_true, (-1,)), seg, num_segments=n_seg)
        neg = ops.segment_sum(ops.reshape(w * (1.0 - y_true), (-1,)), seg, num_segments=n_seg)
        self.pos_counts.assign_add(ops.cast(ops.reshape(pos, (t, self.num_labels)), self.dtype))
        self.neg_counts.assign_add(ops.cast(ops.reshape(neg, (t, self.num_labels)), self.dtype))

    def result(self) -> Any:
        """Current mAP over labels with at least one positive (0.0 if none)."""
        pos = ops.flip(self.pos_counts, axis=0)  # highest-score bin first
        neg = ops.flip(self.neg_counts, axis=0)
        tp = ops.cumsum(pos, axis=0)
        fp = ops.cumsum(neg, axis=0)
        precision = ops.divide_no_nan(tp, tp + fp)
        n_pos = tp[-1]
        ap = ops.divide_no_nan(ops.sum(pos * precision, axis=0), n_pos)
        has_pos = ops.cast(n_pos > 0, self.dtype)
        return ops.divide_no_nan(ops.sum(ap * has_pos), ops.sum(has_pos))

    def get_config(self) -> dict[str, Any]:
        """Serializable constructor arguments."""
        return {
            **super().get_config(),
            "num_labels": self.num_labels,
            "num_thresholds": self.num_thresholds,
        }


@keras.saving.register_keras_serializable(package="retdm_keras")
class OverallF1(keras.metrics.Metric):
    """Streaming overall (micro) F1 from accumulated ΣTP, ΣFP, ΣFN.

    A label is predicted when ``y_pred >= threshold``; ``threshold`` may be a
    scalar or a per-label sequence of length ``C``.  The result
    ``2 ΣTP / (2 ΣTP + ΣFP + ΣFN)`` equals ``2 O-P O-R / (O-P + O-R)`` and is
    0.0 when undefined, matching ``evaluate(...)["O-F1"]``.

    Args:
        threshold: decision threshold(s) on ``y_pred``.
        name: metric name in the training logs.
        dtype: dtype of the state and result.
    """

    def __init__(
        self,
        threshold: float | Sequence[float] = 0.5,
        name: str = "O-F1",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        t = np.asarray(threshold, dtype=np.float64)
        if t.ndim > 1 or np.isnan(t).any():
            raise ValueError("threshold must be a finite scalar or a 1-D sequence")
        self.threshold: float | list[float] = float(t) if t.ndim == 0 else t.tolist()
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate a batch of ``(batch, C)`` labels and scores."""
        y_true = ops.cast(y_true, self.dtype)
        y_pred = ops.cast(y_pred, self.dtype)
        w = _broadcast_weight(sample_weight, y_true, self.dtype)
        thr = ops.convert_to_tensor(self.threshold, dtype=self.dtype)
        pred = ops.cast(y_pred >= thr, self.dtype)
        self.tp.assign_add(ops.sum(w * pred * y_true))
        self.fp.assign_add(ops.sum(w * pred * (1.0 - y_true)))
        self.fn.assign_add(ops.sum(w * (1.0 - pred) * y_true))

    def result(self) -> Any:
        """Current O-F1 (0.0 when no positive was predicted or present)."""
        return ops.divide_no_nan(2.0 * self.tp, 2.0 * self.tp + self.fp + self.fn)

    def get_config(self) -> dict[str, Any]:
        """Serializable constructor arguments."""
        return {**super().get_config(), "threshold": self.threshold}
