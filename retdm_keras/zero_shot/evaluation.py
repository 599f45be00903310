"""Zero-shot ranking metrics (ZSL / GZSL) and the ConSE baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from retdm_keras.metrics import per_label_average_precision
from retdm_keras.zero_shot.label_vectors import normalize_rows


def _ranked(y_true, scores, label_indices) -> tuple[np.ndarray, np.ndarray]:
    """``(y, s)`` restricted to the ranked labels, as bool / float64 ``(N, L)``."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    idx = np.asarray(label_indices, dtype=np.int64).reshape(-1)
    if y.ndim != 2 or s.ndim != 2 or y.shape[0] != s.shape[0]:
        raise ValueError(f"y_true and scores must be 2-D with N rows; got {y.shape}, {s.shape}")
    if idx.size == 0 or idx.min() < 0 or idx.max() >= y.shape[1]:
        raise ValueError(f"label_indices must be non-empty and in [0, {y.shape[1]})")
    if np.unique(idx).size != idx.size:
        raise ValueError("label_indices has duplicates")
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("y_true must contain only 0/1 values")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
    if s.shape[1] == y.shape[1]:
        s = s[:, idx]
    elif s.shape[1] != idx.size:
        raise ValueError(
            f"scores have {s.shape[1]} columns: expected {y.shape[1]} (all labels) or "
            f"{idx.size} (the ranked labels, in label_indices order)"
        )
    return y[:, idx].astype(bool), s


def evaluate_zero_shot(
    y_true, scores, label_indices: Sequence[int] | np.ndarray, top_k: Sequence[int] = (3, 5)
) -> dict[str, float]:
    """Rank the labels ``label_indices`` for every image and score the ranking.

    Args:
        y_true: ``(N, C)`` 0/1 ground truth over all ``C`` labels.
        scores: ``(N, C)`` scores over all labels, or ``(N, len(label_indices))`` scores of the
            ranked labels in ``label_indices`` order.
        label_indices: the labels to rank — the unseen ones for ZSL, seen + unseen for GZSL.
        top_k: the ``K`` of ``P@K``, ``R@K``, ``F1@K``.

    Returns:
        ``{"mAP", "P@K", "R@K", "F1@K" for each K, "num_images", "num_images_dropped",
        "num_labels", "num_labels_with_positives"}``; metrics are fractions in ``[0, 1]``
        (papers print them ×100) and ``NaN`` if no image is left.

    Images with no positive among the ranked labels are dropped. With ``N`` kept images,
    ``hits_K`` the number of (image, label) pairs in an image's top ``K`` that are positive and
    ``T`` the number of positive pairs: ``P@K = hits_K / (K·N)``, ``R@K = hits_K / T``,
    ``F1@K = 2·P·R / (P + R)`` (0 if both are 0); ``K`` is capped at the number of ranked
    labels. Ties in the top ``K`` go to the earlier column. ``mAP`` is label-wise: the
    average precision of ranking the ``N`` images by each label's score
    (``sklearn.metrics.average_precision_score``), averaged over the labels with at least one
    positive among the kept images.
    """
    y, s = _ranked(y_true, scores, label_indices)
    keep = y.any(axis=1)
    y, s = y[keep], s[keep]
    n, num_labels = y.shape
    out: dict[str, float] = {"mAP": math.nan}
    ks = [int(k) for k in top_k]
    if any(k < 1 for k in ks):
        raise ValueError(f"top_k values must be >= 1, got {top_k}")
    if n:
        ap = per_label_average_precision(y, s)
        out["mAP"] = float(np.nanmean(ap)) if np.isfinite(ap).any() else math.nan
        order = np.argsort(-s, axis=1, kind="stable")
    positives = int(y.sum())
    for k in ks:
        p = r = f1 = math.nan
        if n:
            k_eff = min(k, num_labels)
            hits = int(np.take_along_axis(y, order[:, :k_eff], axis=1).sum())
            p = hits / (k_eff * n)
            r = hits / positives
            f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
        out.update({f"P@{k}": p, f"R@{k}": r, f"F1@{k}": f1})
    out.update(
        num_images=n,
        num_images_dropped=int((~keep).sum()),
        num_labels=num_labels,
        num_labels_with_positives=int(y.any(axis=0).sum()),
    )
    return out


def evaluate_zsl_gzsl(
    y_true,
    scores,
    seen: Sequence[int] | np.ndarray,
    unseen: Sequence[int] | np.ndarray,
    top_k: Sequence[int] = (3, 5),
) -> dict[str, dict[str, float]]:
    """``{"zsl": rank the unseen labels, "gzsl": rank seen + unseen}``; ``scores`` over all
    ``C`` labels. See :func:`evaluate_zero_shot`."""
    both = np.union1d(np.asarray(seen, np.int64), np.asarray(unseen, np.int64))
    return {
        "zsl": evaluate_zero_shot(y_true, scores, unseen, top_k),
        "gzsl": evaluate_zero_shot(y_true, scores, both, top_k),
    }


def conse_scores(seen_probs, seen_vectors, target_vectors, top_t: int = 10) -> np.ndarray:
    """ConSE (Norouzi et al., 2014) scores of target labels from seen-label probabilities.

    ``score(x, j) = Σ_{s ∈ top-T(x)} p_s(x)·cos(w_s, w_j) / Σ_{s ∈ top-T(x)} p_s(x)``, where
    ``top-T(x)`` are the ``T`` seen labels with the highest probability (ties: earlier column)
    and ``p`` comes from a classifier of the seen labels. 0 for an image whose top-``T``
    probabilities are all 0.

    Args:
        seen_probs: ``(N, S)`` non-negative seen-label probabilities.
        seen_vectors: ``(S, d)`` word vectors of the seen labels.
        target_vectors: ``(L, d)`` word vectors of the labels to score (unseen, or all).
        top_t: ``T`` (capped at ``S``).

    Returns:
        ``(N, L)`` float64 scores.
    """
    p = np.asarray(seen_probs, dtype=np.float64)
    ws = normalize_rows(seen_vectors, "seen_vectors", np.float64)
    wt = normalize_rows(target_vectors, "target_vectors", np.float64)
    if p.ndim != 2 or p.shape[1] != ws.shape[0]:
        raise ValueError(f"seen_probs must be (N, {ws.shape[0]}), got {p.shape}")
    if ws.shape[1] != wt.shape[1]:
        raise ValueError("seen_vectors and target_vectors must have the same dimension")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("seen_probs must be finite and non-negative")
    if top_t < 1:
        raise ValueError(f"top_t must be >= 1, got {top_t}")
    t = min(int(top_t), p.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :t]
    kept = np.zeros_like(p)
    np.put_along_axis(kept, top, np.take_along_axis(p, top, axis=1), axis=1)
    total = kept.sum(axis=1, keepdims=True)
    combined = kept @ (ws @ wt.T)
    return np.divide(combined, total, out=np.zeros_like(combined), where=total > 0)
