"""The tuned baseline: binary-relevance logistic regression with ``C`` chosen on validation data.

``BinaryRelevanceLR`` is what users compare with when they run one scikit-learn
``LogisticRegression`` per label and pick its ``C`` on a validation split, written in numpy
alone (scikit-learn is only a test dependency):

* per label ``l``, the objective is scikit-learn's L2 logistic regression,
  ``0.5 ||w_l||² + C Σ_i log(1 + exp(-s_il (x_i·w_l + b_l)))`` with ``s_il = 2 y_il - 1``
  and the intercept ``b_l`` not penalised. It is minimised divided by ``C N`` (the same
  minimiser; the form scikit-learn's ``lbfgs`` solver uses), all labels at once (the
  objective is a sum over labels) by a numpy L-BFGS with a backtracking line search, until
  the largest gradient entry is at most ``tol``;
* features are scaled first: ``"standard"`` (zero mean, unit variance as
  ``StandardScaler``: a constant column keeps scale 1), ``"maxabs"`` (divided by the largest
  absolute value as ``MaxAbsScaler``, for sparse binary features) or ``None``;
* each candidate ``C`` (in increasing order, each warm-started from the previous solution)
  is fit on the training rows and scored by label-ranking average precision
  (``evaluate(...)["average_precision"]``) on the validation rows; the best ``C`` is kept
  (ties: the smaller ``C``) and the model is refit on all rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from retdm_keras.baselines.lbfgs import log_loss_objective, minimize_lbfgs
from retdm_keras.metrics.evaluation import evaluate

DEFAULT_CS: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
"""The candidate inverse regularisation strengths ``C`` tried by default."""

SCALINGS = ("standard", "maxabs", None)
"""The feature scalings ``BinaryRelevanceLR`` knows."""

CONSTANT_CLIP = 1e-6
"""A label constant in the fitted rows predicts its constant, clipped to ``[1e-6, 1 - 1e-6]``."""

_EPS = float(np.finfo(np.float64).eps)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


# --------------------------------------------------------------------------- #
# input checks and scaling
# --------------------------------------------------------------------------- #
def _check_features(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "toarray"):  # a scipy.sparse matrix, without importing scipy
        x = x.toarray()
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric features (N, F): {error}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (N, F) with N, F >= 1; got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has a non-finite value ({x[row, col]}) at row {row}, column {col}"
        )
    return x


def _check_labels(y: Any, name: str) -> np.ndarray:
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be 0/1 labels (N, L): {error}") from None
    if y.ndim != 2 or y.shape[1] == 0:
        hint = "; use y[:, None] for a single label" if y.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (N, L) with L >= 1; got shape {y.shape}{hint}")
    bad = ~((y == 0) | (y == 1))  # NaN too
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must hold only 0/1 labels; found {y[row, col]} at row {row}, column {col}"
        )
    return y


def _fit_scaler(x: np.ndarray, scaling: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` such that the scaled features are ``(x - mean) / scale``."""
    features = x.shape[1]
    if scaling is None:
        return np.zeros(features), np.ones(features)
    if scaling == "maxabs":
        scale = np.max(np.abs(x), axis=0)
        return np.zeros(features), np.where(scale == 0, 1.0, scale)
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    n = len(x)
    # StandardScaler's test for a column that is constant up to rounding
    constant = var <= n * _EPS * var + (n * mean * _EPS) ** 2
    return mean, np.where(constant, 1.0, np.sqrt(var))


# --------------------------------------------------------------------------- #
# the model
# --------------------------------------------------------------------------- #
class BinaryRelevanceLR:
    """Per-label L2 logistic regression with ``C`` chosen on validation data.

    The objective, the solver, the scalings and the choice of ``C`` are in the module
    docstring. Per label and for a given ``C``, the fitted model is scikit-learn's
    ``LogisticRegression(C=C)`` (L2, intercept not penalised) on the scaled features, solved
    to a tight tolerance. One difference: a label that is constant in the rows a model is fit
    on (all 0 or all 1), which scikit-learn refuses, gets a zero weight vector and the
    intercept of its constant probability clipped to ``[1e-6, 1 - 1e-6]``.

    Args:
        Cs: candidate inverse regularisation strengths (positive); tried in increasing order.
        scaling: ``"standard"``, ``"maxabs"`` or ``None`` (see the module docstring).
        val_fraction: without validation data, the fraction of the training rows held out
            (a permutation seeded by ``seed``) to choose ``C``. With a single candidate and
            no validation data nothing is held out.
        refit: refit with the chosen ``C`` on all rows (training + validation, or all
            training rows when some were held out); with ``False`` the model fit on the
            training rows alone is kept.
        tol: stop the solver when the largest entry of the gradient of the objective divided
            by ``C N`` is at most ``tol``.
        max_iter: the most L-BFGS iterations per fit (a ``RuntimeWarning`` when reached).
        memory: L-BFGS correction pairs kept.
        seed: seed of the held-out rows' permutation.

    Attributes (after ``fit``):
        Cs_: the candidates, sorted increasingly (a tuple of floats).
        C_: the chosen ``C``.
        scores_: ``(len(Cs_),)`` validation label-ranking average precision of each
            candidate (``NaN`` when nothing was scored: one candidate and no validation data).
        coef_: ``(F, L)`` weights on the scaled features ``(x - mean_) / scale_``.
        intercept_: ``(L,)`` intercepts.
        mean_, scale_: ``(F,)`` the feature scaling of the final fit.
        constant_labels_: ``(L,)`` bool, labels constant in the final fit's rows.
        n_iter_: L-BFGS iterations of the final fit.

    Raises:
        ValueError: for empty or non-positive ``Cs``, an unknown ``scaling``, or
            ``val_fraction``, ``tol``, ``max_iter`` or ``memory`` out of range.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5))
    >>> y = (x[:, :3] + 0.5 * rng.normal(size=(200, 3)) > 0).astype(int)
    >>> model = BinaryRelevanceLR().fit(x[:150], y[:150], x[150:], y[150:])
    >>> model.C_ in model.Cs_, model.scores_.shape, model.coef_.shape
    (True, (8,), (5, 3))
    >>> proba = model.predict_proba(x[150:])
    >>> proba.shape, bool(((proba > 0.5) == y[150:]).mean() > 0.7)
    ((50, 3), True)
    """

    def __init__(
        self,
        Cs: Iterable[float] = DEFAULT_CS,
        *,
        scaling: str | None = "standard",
        val_fraction: float = 0.2,
        refit: bool = True,
        tol: float = 1e-8,
        max_iter: int = 2000,
        memory: int = 10,
        seed: int = 0,
    ):
        cs = [float(c) for c in Cs]
        if not cs:
            raise ValueError("Cs must hold at least one candidate C")
        if not all(math.isfinite(c) and c > 0 for c in cs):
            raise ValueError(f"every C in Cs must be positive and finite; got {cs}")
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}; got {scaling!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
        if not tol > 0:
            raise ValueError(f"tol must be > 0; got {tol}")
        if max_iter < 1 or memory < 1:
            raise ValueError(f"max_iter and memory must be >= 1; got {max_iter} and {memory}")
        self.Cs = tuple(cs)
        self.scaling = scaling
        self.val_fraction = float(val_fraction)
        self.refit = bool(refit)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.memory = int(memory)
        self.seed = int(seed)

    # ------------------------------------------------------------------ fitting
    def fit(self, x: Any, y: Any, x_val: Any = None, y_val: Any = None) -> BinaryRelevanceLR:
        """Choose ``C`` and fit.

        Args:
            x: ``(N, F)`` finite features (a scipy sparse matrix is densified).
            y: ``(N, L)`` 0/1 labels.
            x_val: ``(M, F)`` validation features, or ``None`` to hold out ``val_fraction``
                of the training rows.
            y_val: ``(M, L)`` validation labels; given with ``x_val`` or not at all.

        Returns:
            ``self``.

        Raises:
            ValueError: naming the input at fault: not 2-D, empty, non-finite features,
                labels other than 0/1, row counts of features and labels that differ,
                validation data with other feature or label counts than ``x`` and ``y``,
                only one of ``x_val`` and ``y_val``, too few rows to hold some out, or no
                validation row with a positive label (the score is then undefined).
        """
        x, y = self._check_pair(x, y, "x", "y")
        if (x_val is None) != (y_val is None):
            raise ValueError("give both x_val and y_val, or neither")
        self.Cs_ = tuple(sorted(set(self.Cs)))
        scores = np.full(len(self.Cs_), np.nan)
        if x_val is not None:
            x_val, y_val = self._check_pair(x_val, y_val, "x_val", "y_val")
            if x_val.shape[1] != x.shape[1]:
                raise ValueError(f"x_val has {x_val.shape[1]} features but x has {x.shape[1]}")
            if y_val.shape[1] != y.shape[1]:
                raise ValueError(f"y_val has {y_val.shape[1]} labels but y has {y.shape[1]}")
            x_train, y_train = x, y
            x_all, y_all = np.concatenate([x, x_val]), np.concatenate([y, y_val])
        elif len(self.Cs_) > 1:
            n = len(x)
            held = max(1, round(self.val_fraction * n))
            if held >= n:
                raise ValueError(
                    f"x has {n} rows: too few to hold out a val_fraction of {self.val_fraction}"
                )
            order = np.random.default_rng(self.seed).permutation(n)
            x_val, y_val = x[order[:held]], y[order[:held]]
            x_train, y_train = x[order[held:]], y[order[held:]]
            x_all, y_all = x, y
        else:
            x_train, y_train, x_all, y_all = x, y, x, y

        best = 0
        solution = None
        if x_val is not None:
            mean, scale = _fit_scaler(x_train, self.scaling)
            train, val = (x_train - mean) / scale, (x_val - mean) / scale
            if not y_val.any():
                raise ValueError(
                    "the validation rows have no positive label: label-ranking average "
                    "precision is undefined, C cannot be chosen"
                )
            fits = []
            for i, c in enumerate(self.Cs_):
                solution = self._solve(train, y_train, c, solution)
                w, b = solution[:2]
                scores[i] = evaluate(y_val, _sigmoid(val @ w + b))["average_precision"]
                fits.append(solution)
            best = int(np.argmax(scores))  # the first maximum: ties go to the smaller C
            solution = fits[best]
        self.C_ = self.Cs_[best]
        self.scores_ = scores
        if x_val is None or self.refit:
            mean, scale = _fit_scaler(x_all, self.scaling)
            solution = self._solve((x_all - mean) / scale, y_all, self.C_, solution)
        self.mean_, self.scale_ = mean, scale
        self.coef_, self.intercept_, self.constant_labels_, self.n_iter_ = solution
        return self

    def _check_pair(
        self, x: Any, y: Any, x_name: str, y_name: str
    ) -> tuple[np.ndarray, np.ndarray]:
        x = _check_features(x, x_name)
        y = _check_labels(y, y_name)
        if len(x) != len(y):
            raise ValueError(
                f"{x_name} and {y_name} must have the same number of rows; "
                f"got {len(x)} and {len(y)}"
            )
        return x, y

    def _solve(
        self,
        x: np.ndarray,
        y: np.ndarray,
        c: float,
        start: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(W, b, constant labels, iterations)`` for one ``C``, warm-started from ``start``."""
        n, features = x.shape
        positives = y.sum(axis=0)
        constant = (positives == 0) | (positives == n)
        rate = np.clip(positives / n, CONSTANT_CLIP, 1.0 - CONSTANT_CLIP)
        w = np.zeros((features, y.shape[1]))
        b = _logit(rate)
        varying = np.flatnonzero(~constant)
        if varying.size == 0:
            return w, b, constant, 0
        w0, b0 = w[:, varying], b[varying]
        if start is not None:  # labels constant in the start keep the default start
            was_varying = ~start[2][varying]
            w0[:, was_varying] = start[0][:, varying[was_varying]]
            b0[was_varying] = start[1][varying[was_varying]]
        objective = log_loss_objective(x, 2.0 * y[:, varying] - 1.0, c)
        theta, iterations, gmax = minimize_lbfgs(
            objective,
            np.concatenate([w0.ravel(), b0]),
            tol=self.tol,
            max_iter=self.max_iter,
            memory=self.memory,
        )
        if gmax > self.tol:
            warnings.warn(
                f"BinaryRelevanceLR: L-BFGS stopped after {iterations} iterations at C={c} "
                f"with gradient {gmax:.1e} > tol={self.tol:.1e}; raise max_iter or tol",
                RuntimeWarning,
                stacklevel=3,
            )
        size = features * varying.size
        w[:, varying] = theta[:size].reshape(features, varying.size)
        b[varying] = theta[size:]
        return w, b, constant, iterations

    # ------------------------------------------------------------------ prediction
    def decision_function(self, x: Any) -> np.ndarray:
        """``(N, L)`` logits of ``x``.

        Raises:
            RuntimeError: before ``fit``.
            ValueError: for features that are not 2-D, are not finite or whose count differs
                from the training features'.
        """
        if not hasattr(self, "coef_"):
            raise RuntimeError("call fit() first")
        x = _check_features(x, "x")
        if x.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"x has {x.shape[1]} features but the model {self.coef_.shape[0]}")
        return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, x: Any) -> np.ndarray:
        """``(N, L)`` probabilities of each label for ``x`` (same errors as
        ``decision_function``)."""
        return _sigmoid(self.decision_function(x))

    def predict(self, x: Any, threshold: float = 0.5) -> np.ndarray:
        """``(N, L)`` 0/1 predictions: probability ``>= threshold``."""
        return (self.predict_proba(x) >= threshold).astype(np.int64)
