"""Multi-label evaluation metrics used in the RETDM paper (Li et al., TNNLS 2020).

Definitions follow Zhang & Zhou (2014, "A review on multi-label learning
algorithms") and Wang et al. (2016, "CNN-RNN: a unified framework for
multi-label image classification").  Notation: ``N`` samples (images), ``C``
labels, ``y_true`` an ``(N, C)`` 0/1 matrix, ``scores`` an ``(N, C)`` real
matrix (usually sigmoid probabilities), and hard predictions
``pred = scores >= threshold``.

Threshold-based metrics (use ``pred``)
--------------------------------------
``C-P``, ``C-R``, ``C-F1`` (per-Class, "macro")
    Precision ``TP_c / (TP_c + FP_c)`` and recall ``TP_c / (TP_c + FN_c)`` are
    computed for every label and averaged over the ``C`` labels.  A label whose
    denominator is zero (never predicted, resp. never present) contributes 0 to
    the mean -- the usual CNN-RNN convention.  ``C-F1`` is the harmonic mean of
    ``C-P`` and ``C-R`` (NOT the mean of per-label F1 scores).
``O-P``, ``O-R``, ``O-F1`` (Overall, "micro")
    The same quantities from counts pooled over all (sample, label) pairs:
    ``O-P = sum TP / (sum TP + sum FP)``, ``O-R = sum TP / (sum TP + sum FN)``,
    ``O-F1`` their harmonic mean.  Undefined ratios are reported as 0.
``hamming_loss`` (lower is better)
    Fraction of the ``N * C`` (sample, label) predictions that are wrong.

Ranking-based metrics (use ``scores`` only)
-------------------------------------------
Samples with no true label are excluded from these four metrics (a ranking
cannot be judged without a relevant label).  If no sample has a true label they
are ``NaN``.

``ranking_loss`` (lower is better)
    Per sample, the fraction of (relevant, irrelevant) label pairs ordered
    wrongly, i.e. with ``score(irrelevant) >= score(relevant)``; a tie counts as
    a wrong pair, exactly as ``sklearn.metrics.label_ranking_loss``.  A sample
    whose labels are all relevant has no pair and counts as 0 (as in sklearn).
``one_error`` (lower is better)
    Fraction of samples whose top-scored label (first maximum, ``argmax``) is
    not relevant.
``coverage`` (lower is better)
    How far down the ranking one must go to cover every relevant label,
    0-based: ``max over relevant j of #{k : score_k >= score_j}`` minus 1.
    This equals ``sklearn.metrics.coverage_error - 1``; range ``[0, C - 1]``.
``average_precision`` (higher is better)
    Label-ranking average precision: for every relevant label ``j``, the
    fraction of labels ranked at or above ``j`` that are relevant, averaged over
    relevant labels and then samples (``label_ranking_average_precision_score``
    semantics, ties resolved pessimistically as in sklearn).

Per-label retrieval metric
--------------------------
``mAP`` (higher is better)
    For each label, the non-interpolated average precision of ranking the ``N``
    samples by that label's score, ``AP = sum_k (R_k - R_{k-1}) P_k`` over the
    distinct score thresholds (``sklearn.metrics.average_precision_score``);
    averaged over the labels that have at least one positive sample (labels
    without positives are skipped, not counted as 0).  ``NaN`` if no label has
    a positive.

All metrics except the four marked "lower is better" (see
:data:`LOWER_IS_BETTER`) are higher-is-better and lie in ``[0, 1]``.

Streaming Keras metrics
-----------------------
:class:`MeanAveragePrecision` and :class:`OverallF1` are ``keras.metrics.Metric``
subclasses for ``model.compile(metrics=[...])``; their states are plain sums, so
they are safe under distribution strategies and across batches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from retdm_keras.metric_names import METRIC_NAMES

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "MeanAveragePrecision",
    "OverallF1",
    "evaluate",
    "format_table",
    "per_label_average_precision",
]


LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"hamming_loss", "ranking_loss", "one_error", "coverage"}
)
"""Metrics for which a smaller value is better; all others are higher-is-better."""

# Upper bound on the number of elements of the (rows, C, C) comparison tensor
# built per chunk by the ranking metrics (bounded memory for large N).
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- #
# Input validation
# --------------------------------------------------------------------------- #
def _check_inputs(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert inputs; returns (bool labels, float64 scores)."""
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if y.ndim != 2:
        raise ValueError(f"y_true must be 2-D (N, C); got shape {y.shape}")
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, C); got shape {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores must have the same shape; got {y.shape} and {s.shape}")
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"y_true and scores must be non-empty; got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise ValueError(f"y_true must be numeric or boolean; got dtype {y.dtype}")
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == np.bool_):
        raise ValueError(f"scores must be numeric; got dtype {s.dtype}")
    if np.iscomplexobj(y) or np.iscomplexobj(s):
        raise ValueError("y_true and scores must be real-valued")
    bad = ~((y == 0) | (y == 1))  # NaN compares unequal, so it is caught here too
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"y_true must contain only 0/1 values; first offending row is {row}")
    s = s.astype(np.float64)
    nan = np.isnan(s)
    if nan.any():
        row = int(np.flatnonzero(nan.any(axis=1))[0])
        raise ValueError(f"scores must not contain NaN; first offending row is {row}")
    return y.astype(bool), s


def _check_threshold(threshold: Any, num_labels: int) -> np.ndarray:
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim == 1 and t.shape[0] != num_labels:
        raise ValueError(
            f"threshold must be a scalar or have shape ({num_labels},); got shape {t.shape}"
        )
    if t.ndim > 1:
        raise ValueError(f"threshold must be a scalar or 1-D; got shape {t.shape}")
    if np.isnan(t).any():
        raise ValueError("threshold must not contain NaN")
    return t


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """Elementwise num / den with 0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _harmonic(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


# --------------------------------------------------------------------------- #
# Metric kernels
# --------------------------------------------------------------------------- #
def _ranking_metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """ranking_loss, one_error, coverage, average_precision over rows with a true label."""
    keep = y.any(axis=1)
    names = ("ranking_loss", "one_error", "coverage", "average_precision")
    if not keep.any():
        return dict.fromkeys(names, math.nan)
    y, s = y[keep], s[keep]
    n, c = y.shape
    n_pos = y.sum(axis=1)
    n_neg = c - n_pos

    rl = np.empty(n)
    cov = np.empty(n)
    lrap = np.empty(n)
    step = max(1, _CHUNK_ELEMENTS // (c * c))
    for a in range(0, n, step):
        yb, sb = y[a : a + step], s[a : a + step]
        # ge[i, j, k] = score_k >= score_j  (label k ranked at or above label j)
        ge = sb[:, None, :] >= sb[:, :, None]
        rank = ge.sum(axis=2)  # pessimistic 1-based rank of each label
        rel_above = (ge & yb[:, None, :]).sum(axis=2)  # relevant labels at or above
        wrong = np.where(yb, rank - rel_above, 0).sum(axis=1)  # irrelevant >= relevant
        pairs = n_pos[a : a + step] * n_neg[a : a + step]
        rl[a : a + step] = _safe_div(wrong, pairs)  # all-relevant rows: 0 pairs -> 0
        cov[a : a + step] = np.where(yb, rank, 0).max(axis=1) - 1
        lrap[a : a + step] = np.where(yb, rel_above / rank, 0.0).sum(axis=1) / n_pos[a : a + step]

    top = np.argmax(s, axis=1)
    one_err = ~y[np.arange(n), top]
    return {
        "ranking_loss": float(rl.mean()),
        "one_error": float(one_err.mean()),
        "coverage": float(cov.mean()),
        "average_precision": float(lrap.mean()),
    }


def _per_label_ap(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Step-wise (non-interpolated) AP of each column; NaN for columns without positives."""
    n = y.shape[0]
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    y_sorted = np.take_along_axis(y, order, axis=0).astype(np.float64)
    tp = np.cumsum(y_sorted, axis=0)
    precision = tp / np.arange(1, n + 1, dtype=np.float64)[:, None]
    # Tied scores form one threshold: every member of a tie group gets the
    # precision measured at the end of its group.
    is_end = np.ones_like(s_sorted, dtype=bool)
    is_end[:-1] = s_sorted[:-1] != s_sorted[1:]
    idx = np.where(is_end, np.arange(n)[:, None], n)
    group_end = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    prec_at_end = np.take_along_axis(precision, group_end, axis=0)
    n_pos = tp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (y_sorted * prec_at_end).sum(axis=0) / n_pos
    ap[n_pos == 0] = np.nan
    return ap


def per_label_average_precision(y_true: Any, scores: Any) -> np.ndarray:
    """Per-label average precision (the terms averaged by ``mAP``).

    Returns a float64 array of shape ``(C,)``; labels with no positive sample in
    ``y_true`` get ``NaN``.  Same input validation as :func:`evaluate`.
    """
    y, s = _check_inputs(y_true, scores)
    return _per_label_ap(y, s)


def evaluate(
    y_true: Any, scores: Any, threshold: float | Sequence[float] = 0.5
) -> dict[str, float]:
    """Compute the 12 RETDM multi-label metrics.

    Args:
        y_true: ``(N, C)`` array of 0/1 (or bool) ground-truth labels.
        scores: ``(N, C)`` real scores (typically probabilities); NaN is rejected.
        threshold: scalar, or per-label array of shape ``(C,)``; a label is
            predicted when ``score >= threshold``.

    Returns:
        ``dict`` mapping each name of :data:`METRIC_NAMES` (in that order) to a
        Python ``float``.  ``ranking_loss``, ``one_error``, ``coverage`` and
        ``average_precision`` are computed over samples with at least one true
        label and are ``NaN`` if there is none; ``mAP`` skips labels without a
        positive and is ``NaN`` if no label has one.  See the module docstring
        for the exact definitions.

    Raises:
        ValueError: on non-2-D or mismatched shapes, empty inputs, ``y_true``
            values other than 0/1, NaN scores, or a threshold of wrong shape.
    """
    y, s = _check_inputs(y_true, scores)
    t = _check_threshold(threshold, y.shape[1])
    pred = s >= t

    tp = (pred & y).sum(axis=0)
    fp = (pred & ~y).sum(axis=0)
    fn = (~pred & y).sum(axis=0)

    c_p = float(_safe_div(tp, tp + fp).mean())
    c_r = float(_safe_div(tp, tp + fn).mean())
    o_p = float(_safe_div(tp.sum(), tp.sum() + fp.sum()))
    o_r = float(_safe_div(tp.sum(), tp.sum() + fn.sum()))

    ap = _per_label_ap(y, s)
    valid = ~np.isnan(ap)
    m_ap = float(ap[valid].mean()) if valid.any() else math.nan

    out = {
        "C-P": c_p,
        "C-R": c_r,
        "C-F1": _harmonic(c_p, c_r),
        "O-P": o_p,
        "O-R": o_r,
        "O-F1": _harmonic(o_p, o_r),
        "hamming_loss": float((pred != y).mean()),
        **_ranking_metrics(y, s),
        "mAP": m_ap,
    }
    return {k: out[k] for k in METRIC_NAMES}


# --------------------------------------------------------------------------- #
# Pretty printing
# --------------------------------------------------------------------------- #
def format_table(
    results: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    *,
    digits: int = 4,
    mark_best: bool = True,
) -> str:
    """Render metric results as a plain-text table, one row per metric.

    Args:
        results: either one result dict from :func:`evaluate` (printed as a
            single column named ``value``), or a mapping ``model name -> result
            dict``, e.g. ``format_table({"RETDM": r1, "BCE": r2})``, printed as
            one column per model.  Metrics missing from a model show ``-``.
        digits: decimals printed for each value.
        mark_best: with several models, append ``*`` to the best finite value
            of each metric (taking :data:`LOWER_IS_BETTER` into account).

    Each metric name is suffixed with ``↑`` (higher is better) or ``↓`` (lower
    is better); a legend line is appended at the bottom.
    """
    if not results:
        raise ValueError("results must not be empty")
    nested = [isinstance(v, Mapping) for v in results.values()]
    if all(nested):
        columns = {str(k): v for k, v in results.items()}
    elif not any(nested):
        columns = {"value": results}
        mark_best = False
    else:
        raise ValueError("results must be one result dict or a mapping name -> result dict")
    if len(columns) < 2:
        mark_best = False

    names = list(columns)
    header = ["metric", *names]
    rows: list[list[str]] = []
    for metric in METRIC_NAMES:
        lower = metric in LOWER_IS_BETTER
        vals = [columns[m].get(metric) for m in names]
        finite = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        best = (min(finite) if lower else max(finite)) if finite and mark_best else None
        cells = []
        for v in vals:
            if v is None:
                cells.append("- " if mark_best else "-")
                continue
            text = f"{float(v):.{digits}f}"
            if mark_best:  # keep the digits aligned whether or not a '*' follows
                text += "*" if best is not None and float(v) == best else " "
            cells.append(text)
        rows.append([f"{metric} {'↓' if lower else '↑'}", *cells])

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    sep = "  ".join("-" * w for w in widths)
    legend = "↑ higher is better, ↓ lower is better"
    if mark_best:
        legend += ", * best per metric"
    return "\n".join([line(header), sep, *(line(r) for r in rows), sep, legend])


# --------------------------------------------------------------------------- #
# Streaming Keras metrics
# --------------------------------------------------------------------------- #
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
