"""Label scores read from the learned metric space: retrieval over the training label sets.

RETDM's metric loss places every image ``u = f(x)`` near the embedding ``g(y)`` of its own
label set and away from the neighbouring sets. The classification head, which the paper
predicts with, never looks at that arrangement. Retrieval does: a softmax over the ``S``
distinct training label sets ``y_s`` of their (negated) distances to ``u``, then the
expected label vector::

    w_s(x) = softmax_s( -d(u, g(y_s)) / T )
    q_l(x) = Σ_s w_s(x) · y_s,l            (a probability for every label l)

With the metric loss's own distances (``d`` on the sphere of radius ``embedding_norm``)
and ``T = 1`` the weights are the loss's softmax over label sets, taken over all of them.
``RETDM(label_set_weight=w)`` predicts ``(1 - w) · sigmoid(head(u)) + w · q(x)``.

Squared distances are computed as ``|u|² + |g|² - 2 u·g``, so memory is ``B × S`` (not
``B × S × D``) for a batch of ``B`` images.

Example:

>>> import numpy as np
>>> u = np.array([[1.0, 0.0]], "float32")
>>> sets = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")          # {label 0}, {label 1}
>>> g = np.array([[1.0, 0.0], [-1.0, 0.0]], "float32")            # their embeddings
>>> q = label_set_scores(u, g, sets)
>>> [round(float(v), 4) for v in np.asarray(q)[0]]
[0.982, 0.018]
"""

from __future__ import annotations

from keras import ops

from retdm_keras.losses import DISTANCES

__all__ = ["label_set_scores"]


def label_set_scores(
    u, set_embeddings, label_sets, temperature: float = 1.0, distance: str = "sqeuclidean"
):
    """Expected label vector under a softmax over label sets by distance.

    Args:
        u: ``(B, D)`` image embeddings (as the metric loss sees them).
        set_embeddings: ``(S, D)`` embeddings ``g(y_s)`` of the distinct training label sets.
        label_sets: ``(S, C)`` multi-hot label sets ``y_s``.
        temperature: ``T``, divides the distances before the softmax.
        distance: ``"sqeuclidean"`` (default) or ``"euclidean"``, as in the metric loss.

    Returns:
        ``(B, C)`` scores in ``[0, 1]``.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    u = ops.convert_to_tensor(u)
    g = ops.cast(set_embeddings, u.dtype)
    sets = ops.cast(label_sets, u.dtype)
    squared = (
        ops.sum(ops.square(u), axis=-1, keepdims=True)
        + ops.sum(ops.square(g), axis=-1)[None, :]
        - 2.0 * ops.matmul(u, ops.transpose(g))
    )
    squared = ops.maximum(squared, 0.0)
    d = squared if distance == "sqeuclidean" else ops.sqrt(ops.maximum(squared, 1e-12))
    weights = ops.softmax(-d / temperature, axis=-1)
    return ops.matmul(weights, sets)
