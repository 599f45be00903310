"""The two-way metric loss against an independent numpy implementation."""

import numpy as np
import pytest
import tensorflow as tf
from references import reference_two_way

from retdm_keras.losses import (
    classification_loss,
    reconstruction_loss,
    two_way_metric_loss,
)


def random_case(seed, batch=6, k=4, dim=5, scale=0.7):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(batch, dim)) * scale
    v = rng.normal(size=(batch, dim)) * scale
    nbr_label = rng.normal(size=(batch, k, dim)) * scale
    nbr_image = rng.normal(size=(batch, k, dim)) * scale
    mask = (rng.random((batch, k)) > 0.3).astype(np.float64)
    mask[0] = 0.0  # a sample with no neighbour at all
    mask[1] = 1.0
    return u, v, nbr_label, nbr_image, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("hinge_reduction", ["mean", "sum"])
def test_two_way_loss_matches_numpy(seed, margin, alpha, distance, hinge_reduction):
    u, v, nl, ni, mask = random_case(seed)
    expected = reference_two_way(u, v, nl, ni, mask, margin, alpha, distance, hinge_reduction)
    got = two_way_metric_loss(
        u.astype("float32"),
        v.astype("float32"),
        nl.astype("float32"),
        ni.astype("float32"),
        mask.astype("float32"),
        margin=margin,
        alpha=alpha,
        distance=distance,
        hinge_reduction=hinge_reduction,
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=2e-5)


def test_masked_neighbours_do_not_count():
    u, v, nl, ni, mask = random_case(3)
    base = np.asarray(two_way_metric_loss(u, v, nl, ni, mask, margin=0.5))
    # Changing a padded neighbour's embedding must not change the loss.
    nl2, ni2 = nl.copy(), ni.copy()
    padded = np.argwhere(mask == 0)
    nl2[padded[:, 0], padded[:, 1]] = 1e3
    ni2[padded[:, 0], padded[:, 1]] = -1e3
    np.testing.assert_allclose(
        np.asarray(two_way_metric_loss(u, v, nl2, ni2, mask, margin=0.5)), base, rtol=1e-6
    )
    # No neighbour at all: softmax term is -log 1 = 0, hinge empty.
    assert base[0] == pytest.approx(0.0, abs=1e-7)


def test_second_way_uses_label_embedding_against_images():
    # alpha scales exactly the second way: L(alpha=2) - L(alpha=1) == L(alpha=1) - L(alpha=0).
    u, v, nl, ni, mask = random_case(4)
    losses = [np.asarray(two_way_metric_loss(u, v, nl, ni, mask, alpha=a)) for a in (0, 1, 2)]
    np.testing.assert_allclose(losses[2] - losses[1], losses[1] - losses[0], rtol=1e-4, atol=1e-5)
    # and the second way does not depend on the neighbour label embeddings
    second = losses[1] - losses[0]
    l_other = np.asarray(two_way_metric_loss(u, v, nl * 3, ni, mask, alpha=1)) - np.asarray(
        two_way_metric_loss(u, v, nl * 3, ni, mask, alpha=0)
    )
    np.testing.assert_allclose(second, l_other, rtol=1e-4, atol=1e-5)


def test_large_distances_stay_finite():
    u, v, nl, ni, mask = random_case(5, scale=100.0)
    got = np.asarray(two_way_metric_loss(u, v, nl, ni, mask, margin=1.0))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(
        got, reference_two_way(u, v, nl, ni, mask, 1.0, 1.0, "sqeuclidean"), rtol=1e-4
    )


def test_gradient_pulls_positive_pair_together():
    u, v, nl, ni, mask = random_case(6)
    u_t = tf.Variable(u.astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(two_way_metric_loss(u_t, v, nl, ni, mask.astype("float32")))
    grad = tape.gradient(loss, u_t).numpy()
    # A small step against the gradient lowers the loss.
    stepped = two_way_metric_loss(u - 0.01 * grad, v, nl, ni, mask)
    assert float(np.mean(stepped)) < float(loss)


def test_bce_and_mse_match_numpy():
    rng = np.random.default_rng(7)
    y = (rng.random((5, 4)) > 0.5).astype("float32")
    logits = rng.normal(size=(5, 4)).astype("float32") * 3
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    np.testing.assert_allclose(np.asarray(classification_loss(y, logits)), bce, rtol=1e-5)
    rec = rng.normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(reconstruction_loss(y, rec)), ((y - rec) ** 2).mean(axis=1), rtol=1e-6
    )


def test_unknown_distance_is_an_error():
    u, v, nl, ni, mask = random_case(0)
    with pytest.raises(ValueError, match="distance"):
        two_way_metric_loss(u, v, nl, ni, mask, distance="cosine")


def _numeric_gradient(fn, x, eps=1e-5):
    """Central differences of the scalar ``fn`` at ``x`` (float64)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_second_way_without_image_gradient(margin):
    """Same value; u's gradient is the first way's only; v's is the full two-way one."""
    u, v, nl, ni, mask = random_case(3)
    u_t, v_t = tf.Variable(u), tf.Variable(v)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            two_way_metric_loss(
                u_t, v_t, nl, ni, mask, margin=margin, image_gradient_in_second_way=False
            )
        )
    grad_u, grad_v = (g.numpy() for g in tape.gradient(loss, [u_t, v_t]))

    def total(u_, v_, alpha):
        return float(np.sum(reference_two_way(u_, v_, nl, ni, mask, margin, alpha, "sqeuclidean")))

    np.testing.assert_allclose(float(loss), total(u, v, 1.0), rtol=1e-9)
    first_way_only = _numeric_gradient(lambda x: total(x, v, 0.0), u)
    np.testing.assert_allclose(grad_u, first_way_only, rtol=1e-4, atol=1e-6)
    both_ways = _numeric_gradient(lambda x: total(u, x, 1.0), v)
    np.testing.assert_allclose(grad_v, both_ways, rtol=1e-4, atol=1e-6)
    # and with the gradient kept, u's gradient includes the second way
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(two_way_metric_loss(u_t, v_t, nl, ni, mask, margin=margin))
    full_u = _numeric_gradient(lambda x: total(x, v, 1.0), u)
    np.testing.assert_allclose(tape.gradient(loss, u_t).numpy(), full_u, rtol=1e-4, atol=1e-6)
    assert not np.allclose(full_u, first_way_only)
