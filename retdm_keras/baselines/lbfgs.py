"""A small numpy L-BFGS and the binary-relevance logistic loss it minimises
(``BinaryRelevanceLR``'s solver)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

_EPS = float(np.finfo(np.float64).eps)


def minimize_lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    memory: int = 10,
    max_backtracks: int = 60,
) -> tuple[np.ndarray, int, float]:
    """Minimise ``fun`` (returning value and gradient) from ``x0`` by L-BFGS.

    The step is found by backtracking from 1 (halving) until the Armijo condition holds; near
    the minimum, where the decrease is below the rounding of the value, a step whose value is
    unchanged to rounding and whose gradient is smaller is accepted instead. Correction pairs
    with no positive curvature are skipped.

    Returns:
        ``(x, iterations, largest absolute gradient entry at x)``; converged when the last is
        ``<= tol``. Stops early, unconverged, when no step decreases the objective.
    """
    x = np.array(x0, dtype=np.float64)
    value, grad = fun(x)
    pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=memory)
    for iteration in range(max_iter):
        gmax = float(np.max(np.abs(grad), initial=0.0))
        if gmax <= tol:
            return x, iteration, gmax
        # two-loop recursion: direction = -H grad
        q = grad.copy()
        alphas = []
        for s, y, rho in reversed(pairs):
            alpha = rho * float(s @ q)
            q -= alpha * y
            alphas.append(alpha)
        if pairs:
            s, y, _ = pairs[-1]
            q *= float(s @ y) / float(y @ y)
        else:
            q /= max(1.0, gmax)
        for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
            q += s * (alpha - rho * float(y @ q))
        direction = -q
        slope = float(grad @ direction)
        if not slope < 0:  # not a descent direction: restart from steepest descent
            pairs.clear()
            direction = -grad / max(1.0, gmax)
            slope = float(grad @ direction)
        step = 1.0
        for _ in range(max_backtracks):
            x_new = x + step * direction
            value_new, grad_new = fun(x_new)
            if value_new <= value + 1e-4 * step * slope:
                break
            rounding = abs(value_new - value) <= 16 * _EPS * max(1.0, abs(value))
            if rounding and float(np.max(np.abs(grad_new), initial=0.0)) < gmax:
                break
            step *= 0.5
        else:
            return x, iteration, gmax
        s, y = x_new - x, grad_new - grad
        sy = float(s @ y)
        if sy > _EPS * float(np.linalg.norm(s) * np.linalg.norm(y)):
            pairs.append((s, y, 1.0 / sy))
        x, value, grad = x_new, value_new, grad_new
    return x, max_iter, float(np.max(np.abs(grad), initial=0.0))


def log_loss_objective(
    x: np.ndarray, signs: np.ndarray, c: float
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``(value, gradient)`` of ``Σ_l [0.5 ||w_l||² + C Σ_i logloss_il] / (C N)``.

    The parameters are ``W (F, L)`` flattened, then ``b (L,)``; ``signs`` is ``2 y - 1``.
    """
    n, features = x.shape
    labels = signs.shape[1]
    size = features * labels

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[:size].reshape(features, labels)
        margin = -signs * (x @ w + theta[size:])  # the loss is log(1 + exp(margin))
        loss = np.logaddexp(0.0, margin)
        # d loss / d z = -sign * sigmoid(margin), sigmoid(m) = exp(m - log(1 + exp(m)))
        residual = -signs * np.exp(margin - loss) / n
        value = float(loss.sum()) / n + float(np.sum(w * w)) / (2.0 * c * n)
        grad_w = x.T @ residual + w / (c * n)
        return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    return fun
