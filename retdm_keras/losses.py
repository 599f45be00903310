"""The RETDM losses, written the way they read on paper.

Symbols (the same in the code below):

* ``u_i = f(x_i)``      image embedding of sample *i*, shape ``(B, D)``
* ``v_i = g(y_i)``      label embedding of its own label set, ``(B, D)``
* ``y_k``               the *K* nearest distinct label sets other than ``y_i`` (Hamming distance)
* ``g(y_k)``            their label embeddings, ``nbr_label_emb``, ``(B, K, D)``
* ``u_jk = f(x_jk)``    an image whose label set is ``y_k``, ``nbr_image_emb``, ``(B, K, D)``
* ``m_ik``              1 where neighbour *k* of sample *i* exists, 0 where it is padding
* ``d(a, b)``           squared Euclidean distance (option: Euclidean)

One way (image → label sets)::

    d0   = d(u_i, v_i)            dk = d(u_i, g(y_k))
    L1_i = -log( e^{-d0} / (e^{-d0} + Σ_k m_ik e^{-dk}) ) + H_k m_ik max(0, margin + d0 - dk)

Second way (label set → images)::

    d'k  = d(v_i, u_jk)
    L2_i = -log( e^{-d0} / (e^{-d0} + Σ_k m_ik e^{-d'k}) ) + H_k m_ik max(0, margin + d0 - d'k)

``H_k`` is the mean over the real neighbours (``hinge_reduction="mean"``, the default: a sum
rewards collapsing all embeddings onto one point, where every hinge is 0) or the sum
``Σ_k`` (``"sum"``, the adopted formula).

When the neighbour images ``u_jk`` carry no gradient (they come from the memory bank, see
``retdm_keras.memory_bank``), the second way's ``d0`` is computed from ``stop_gradient(u_i)``
(``image_gradient_in_second_way=False``): the second way then shapes the label embedding
``v_i`` only, and ``f`` learns from the first way and ``L_cls``. Its value is unchanged.

Together::

    L_metric = mean_i (L1_i + alpha * L2_i)
    L_cls    = BCE(sigmoid(classification head(u)), y)       (computed from the logits)
    L_rec    = mean squared error(reconstruction head(v), y)
    L        = L_cls + lam * L_metric + mu * L_rec

The paper (Li et al., TNNLS 2020) states the two-way idea in words; its formulas are not in
our copy, so the exact form above is *our reconstruction* (see ``docs/method.md``, "The loss
(adopted)").
The softmax term is computed with a log-sum-exp, so it is finite for any distance.
"""

from __future__ import annotations

import keras
from keras import ops

DISTANCES = ("sqeuclidean", "euclidean")


def pairwise_distance(a, b, distance: str = "sqeuclidean"):
    """``d(a, b)`` over the last axis; ``a`` and ``b`` broadcast against each other."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    sq = ops.sum(ops.square(a - b), axis=-1)
    if distance == "sqeuclidean":
        return sq
    # sqrt has an infinite gradient at 0; a tiny floor keeps it finite.
    return ops.sqrt(ops.maximum(sq, 1e-12))


HINGE_REDUCTIONS = ("mean", "sum")


def one_way_loss(d0, dk, mask, margin: float = 0.0, hinge_reduction: str = "mean"):
    """``-log softmax`` of the own pair against masked neighbours, plus the hinge.

    Args:
        d0: ``(B,)`` distance of the positive pair.
        dk: ``(B, K)`` distances of the negative pairs.
        mask: ``(B, K)`` 1 for real neighbours, 0 for padding.
        margin: hinge margin.
        hinge_reduction: ``"mean"`` (default) averages the hinge over the real neighbours,
            ``"sum"`` adds it up (``Σ_k``, the adopted formula).

    Returns:
        ``(B,)`` per-sample loss.
    """
    if hinge_reduction not in HINGE_REDUCTIONS:
        raise ValueError(
            f"hinge_reduction must be one of {HINGE_REDUCTIONS}, got {hinge_reduction!r}"
        )
    mask = ops.cast(mask, d0.dtype)
    logits_pos = -d0[:, None]  # (B, 1)
    # Padding gets -inf-like logits so e^{logit} = 0 in the denominator.
    very_negative = ops.cast(-1e9, d0.dtype)
    logits_neg = ops.where(mask > 0, -dk, very_negative)  # (B, K)
    logits = ops.concatenate([logits_pos, logits_neg], axis=1)
    softmax_term = ops.logsumexp(logits, axis=1) - logits_pos[:, 0]
    hinge_term = ops.sum(mask * ops.relu(margin + d0[:, None] - dk), axis=1)
    if hinge_reduction == "mean":
        hinge_term = hinge_term / ops.maximum(ops.sum(mask, axis=1), 1.0)
    return softmax_term + hinge_term


def two_way_metric_loss(
    u,
    v,
    nbr_label_emb,
    nbr_image_emb,
    mask,
    margin: float = 0.0,
    alpha: float = 1.0,
    distance: str = "sqeuclidean",
    image_gradient_in_second_way: bool = True,
    hinge_reduction: str = "mean",
):
    """Per-sample two-way metric loss ``L1_i + alpha * L2_i``.

    Args:
        u: ``(B, D)`` image embeddings ``f(x_i)``.
        v: ``(B, D)`` label embeddings ``g(y_i)``.
        nbr_label_emb: ``(B, K, D)`` label embeddings ``g(y_k)`` of the neighbour sets.
        nbr_image_emb: ``(B, K, D)`` image embeddings ``u_jk`` of images carrying ``y_k``.
        mask: ``(B, K)`` 1 where neighbour *k* exists.
        margin: hinge margin.
        alpha: weight of the second way (0 gives the one-way ablation).
        distance: ``"sqeuclidean"`` (default) or ``"euclidean"``.
        image_gradient_in_second_way: False stops the gradient of ``L2_i`` into ``u_i``
            (same value). Default True; ``RETDM`` passes False when ``nbr_image_emb`` comes
            from the memory bank: with its ``u_jk`` frozen, ``L2_i`` can only be lowered
            through ``u_i``, and because ``f`` is shared that moves every image at once, the
            ``u_jk`` included, so the loss goes *up* once the bank catches up (see
            ``docs/method.md``, "Second way without image gradient under the bank").
        hinge_reduction: ``"mean"`` (default) or ``"sum"`` over the neighbours, see
            :func:`one_way_loss`.

    Returns:
        ``(B,)`` per-sample losses; ``mean`` of it is ``L_metric``.

    Example:

    >>> import numpy as np
    >>> u, v = np.zeros((2, 4), "float32"), np.zeros((2, 4), "float32")
    >>> nbr = np.ones((2, 3, 4), "float32")
    >>> loss = two_way_metric_loss(u, v, nbr, nbr, np.ones((2, 3), "float32"))
    >>> tuple(loss.shape)
    (2,)
    """
    u = ops.convert_to_tensor(u)
    v = ops.convert_to_tensor(v, dtype=u.dtype)
    d0 = pairwise_distance(u, v, distance)  # d(u_i, v_i)
    dk = pairwise_distance(u[:, None, :], nbr_label_emb, distance)  # d(u_i, g(y_k))
    dk_prime = pairwise_distance(v[:, None, :], nbr_image_emb, distance)  # d(v_i, u_jk)
    d0_second = (
        d0 if image_gradient_in_second_way else pairwise_distance(ops.stop_gradient(u), v, distance)
    )
    l1 = one_way_loss(d0, dk, mask, margin, hinge_reduction)
    l2 = one_way_loss(d0_second, dk_prime, mask, margin, hinge_reduction)
    return l1 + alpha * l2


def classification_loss(y, logits):
    """``L_cls``: binary cross-entropy of the sigmoid head, from its logits, ``(B,)`` per sample."""
    return keras.losses.binary_crossentropy(ops.cast(y, logits.dtype), logits, from_logits=True)


def reconstruction_loss(y, reconstruction):
    """``L_rec``: mean squared error of the reconstructed label vector, ``(B,)`` per sample."""
    return ops.mean(ops.square(ops.cast(y, reconstruction.dtype) - reconstruction), axis=-1)
