"""ML-kNN and the exact k-nearest-neighbour search (``nearest_neighbors``) it uses.

``MLkNN`` (Zhang & Zhou, "ML-KNN: A lazy learning approach to multi-label learning", Pattern
Recognition 2007). For every label ``l``, with ``k`` nearest neighbours (Euclidean) and
smoothing ``s``:

* prior ``P(H1) = (s + #{i : y_il = 1}) / (2s + m)``, ``P(H0) = 1 - P(H1)``;
* over the training samples, ``c_i`` = how many of the ``k`` neighbours of ``i`` (itself
  excluded) carry ``l``; ``kj[c] = #{i : y_il = 1, c_i = c}``, ``kn[c] = #{i : y_il = 0,
  c_i = c}``, and ``P(E_c | H1) = (s + kj[c]) / (s(k + 1) + Σ_c' kj[c'])`` (same for ``H0``
  with ``kn``);
* a query with ``c`` neighbours carrying ``l`` scores the posterior
  ``P(H1) P(E_c | H1) / (P(H1) P(E_c | H1) + P(H0) P(E_c | H0))``.

The paper predicts ``l`` when ``P(H1) P(E_c|H1) > P(H0) P(E_c|H0)``, i.e. posterior > 0.5;
``evaluate`` uses ``>= 0.5``, which differs only for an exact tie. Neighbours are ordered by
distance, ties broken by the lower training index.
"""

from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- #
# k nearest neighbours
# --------------------------------------------------------------------------- #
def nearest_neighbors(
    queries: np.ndarray,
    points: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    block_size: int = 1024,
) -> np.ndarray:
    """Indices ``(Q, k)`` of the ``k`` nearest ``points`` of each query (Euclidean).

    Ordered by distance, ties by the lower point index. With ``exclude_self`` the queries are
    the points themselves and query ``i`` never gets point ``i``. Distances are computed in
    float64 blocks of ``block_size`` queries (memory ``block_size × P``).
    """
    queries = np.asarray(queries, np.float64)
    points = np.asarray(points, np.float64)
    if queries.ndim != 2 or points.ndim != 2 or queries.shape[1] != points.shape[1]:
        raise ValueError(
            f"queries (Q, F) and points (P, F) must agree: {queries.shape} vs {points.shape}"
        )
    available = len(points) - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in 1..{available} for {len(points)} points, got {k}")
    if exclude_self and len(queries) != len(points):
        raise ValueError("exclude_self needs the queries to be the points themselves")
    point_norms = np.einsum("ij,ij->i", points, points)
    result = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), block_size):
        block = queries[start : start + block_size]
        dist = (
            np.einsum("ij,ij->i", block, block)[:, None]
            + point_norms[None, :]
            - 2.0 * block @ points.T
        )
        np.maximum(dist, 0.0, out=dist)
        rows = np.arange(len(block))
        if exclude_self:
            dist[rows, rows + start] = np.inf
        # candidates: the k smallest (argpartition), then a stable (distance, index) order
        candidates = np.argpartition(dist, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(dist, candidates, axis=1).max(axis=1)
        for r in range(len(block)):
            tied = np.flatnonzero(dist[r] <= kth[r])  # all points as close as the k-th
            order = np.lexsort((tied, dist[r, tied]))
            result[start + r] = tied[order[:k]]
    return result


# --------------------------------------------------------------------------- #
# ML-kNN
# --------------------------------------------------------------------------- #
class MLkNN:
    """Multi-label k nearest neighbours (Zhang & Zhou 2007), see the module docstring.

    Args:
        k: neighbours per sample (the paper: 10).
        s: Laplace smoothing (the paper: 1).

    Attributes (after ``fit``):
        prior_: ``(C,)`` ``P(H1)`` per label.
        cond_true_: ``(C, k + 1)`` ``P(E_c | H1)`` for ``c = 0..k``.
        cond_false_: ``(C, k + 1)`` ``P(E_c | H0)``.
    """

    def __init__(self, k: int = 10, s: float = 1.0):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if s < 0:
            raise ValueError(f"s must be >= 0, got {s}")
        self.k = int(k)
        self.s = float(s)

    def fit(self, features, labels) -> MLkNN:
        features = np.asarray(features, np.float64)
        labels = np.asarray(labels) > 0.5
        if features.ndim != 2 or labels.ndim != 2 or len(features) != len(labels):
            raise ValueError(
                f"features (N, F) and labels (N, C) must agree: {features.shape} vs {labels.shape}"
            )
        m, num_labels = labels.shape
        k, s = self.k, self.s
        self.prior_ = (s + labels.sum(axis=0)) / (2.0 * s + m)
        neighbours = nearest_neighbors(features, features, k, exclude_self=True)
        counts = labels[neighbours].sum(axis=1)  # (m, C): neighbours of i carrying l
        kj = np.zeros((num_labels, k + 1))
        kn = np.zeros((num_labels, k + 1))
        for label in range(num_labels):
            has = labels[:, label]
            kj[label] = np.bincount(counts[has, label], minlength=k + 1)
            kn[label] = np.bincount(counts[~has, label], minlength=k + 1)
        self.cond_true_ = (s + kj) / (s * (k + 1) + kj.sum(axis=1, keepdims=True))
        self.cond_false_ = (s + kn) / (s * (k + 1) + kn.sum(axis=1, keepdims=True))
        self._features = features
        self._labels = labels
        return self

    def neighbor_counts(self, features) -> np.ndarray:
        """``(Q, C)`` how many of each query's ``k`` training neighbours carry each label."""
        if not hasattr(self, "_features"):
            raise RuntimeError("call fit() first")
        neighbours = nearest_neighbors(np.asarray(features, np.float64), self._features, self.k)
        return self._labels[neighbours].sum(axis=1)

    def predict_proba(self, features) -> np.ndarray:
        """``(Q, C)`` posteriors ``P(H1 | E_c)`` in ``[0, 1]``."""
        counts = self.neighbor_counts(features)
        label_ids = np.arange(counts.shape[1])[None, :]
        true = self.prior_[None, :] * self.cond_true_[label_ids, counts]
        false = (1.0 - self.prior_[None, :]) * self.cond_false_[label_ids, counts]
        total = true + false
        return np.divide(true, total, out=np.full_like(true, 0.5), where=total > 0)

    def predict(self, features) -> np.ndarray:
        """``(Q, C)`` 0/1 predictions, the paper's rule (posterior strictly above 0.5)."""
        return (self.predict_proba(features) > 0.5).astype(np.int64)
