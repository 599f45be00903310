"""The paper's multi-label metrics, computed exactly in numpy: :func:`evaluate` and
:func:`per_label_average_precision` (RETDM paper, Li et al., TNNLS 2020).

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from retdm_keras.metric_names import METRIC_NAMES

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
