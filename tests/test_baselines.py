"""Baselines: ML-kNN against a brute-force reading of the paper, C2AE and the linear probe."""

import math

import numpy as np
import pytest

from retdm_keras.baselines import (
    C2AE,
    MLkNN,
    fit_c2ae,
    fit_linear_probe,
    nearest_neighbors,
    pairwise_ranking_loss,
)
from retdm_keras.metrics import evaluate


# --------------------------------------------------------------------------- brute force
def brute_neighbours(query, points, k, exclude=None):
    """The k nearest points of one query: explicit distances, sorted by (distance, index)."""
    pairs = []
    for j, point in enumerate(points):
        if j == exclude:
            continue
        pairs.append(
            (math.fsum((float(a) - float(b)) ** 2 for a, b in zip(query, point, strict=True)), j)
        )
    pairs.sort()
    return [j for _, j in pairs[:k]]


def brute_mlknn(x_train, y_train, x_test, k, s):
    """ML-kNN posteriors written out from Zhang & Zhou (2007), one label at a time."""
    m, num_labels = y_train.shape
    train_neighbours = [brute_neighbours(x_train[i], x_train, k, exclude=i) for i in range(m)]
    test_neighbours = [brute_neighbours(q, x_train, k) for q in x_test]
    scores = np.zeros((len(x_test), num_labels))
    for label in range(num_labels):
        positives = sum(y_train[i][label] for i in range(m))
        prior_true = (s + positives) / (2 * s + m)
        prior_false = 1 - prior_true
        kj = [0] * (k + 1)
        kn = [0] * (k + 1)
        for i in range(m):
            c = sum(y_train[j][label] for j in train_neighbours[i])
            if y_train[i][label] == 1:
                kj[c] += 1
            else:
                kn[c] += 1
        for t, neighbours in enumerate(test_neighbours):
            c = sum(y_train[j][label] for j in neighbours)
            likelihood_true = (s + kj[c]) / (s * (k + 1) + sum(kj))
            likelihood_false = (s + kn[c]) / (s * (k + 1) + sum(kn))
            true = prior_true * likelihood_true
            false = prior_false * likelihood_false
            scores[t, label] = true / (true + false)
    return scores


def random_problem(seed, n_train=40, n_test=15, features=5, labels=4):
    rng = np.random.default_rng(seed)
    x_train = rng.normal(size=(n_train, features))
    x_test = rng.normal(size=(n_test, features))
    w = rng.normal(size=(features, labels))
    y_train = (x_train @ w + rng.normal(scale=0.5, size=(n_train, labels)) > 0.3).astype(int)
    return x_train, y_train, x_test


# --------------------------------------------------------------------------- neighbours
@pytest.mark.parametrize("exclude_self", [False, True])
def test_nearest_neighbors_matches_brute_force(exclude_self):
    x_train, _, x_test = random_problem(0)
    queries = x_train if exclude_self else x_test
    got = nearest_neighbors(queries, x_train, 6, exclude_self=exclude_self, block_size=7)
    for i, query in enumerate(queries):
        expected = brute_neighbours(query, x_train, 6, exclude=i if exclude_self else None)
        assert got[i].tolist() == expected


def test_nearest_neighbors_breaks_ties_by_index():
    points = np.array([[0.0], [1.0], [-1.0], [1.0], [2.0]])
    assert nearest_neighbors(np.array([[0.0]]), points, 3).tolist() == [[0, 1, 2]]
    # own point excluded; the two points at distance 1 in index order
    assert nearest_neighbors(points, points, 2, exclude_self=True)[0].tolist() == [1, 2]


def test_nearest_neighbors_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(np.zeros((3, 1)), np.zeros((3, 1)), 3, exclude_self=True)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(np.zeros((2, 1)), np.zeros((3, 1)), 0)


# --------------------------------------------------------------------------- ML-kNN
@pytest.mark.parametrize(("seed", "k", "s"), [(0, 10, 1.0), (1, 3, 1.0), (2, 5, 0.5)])
def test_mlknn_matches_brute_force(seed, k, s):
    x_train, y_train, x_test = random_problem(seed)
    model = MLkNN(k=k, s=s).fit(x_train, y_train)
    expected = brute_mlknn(x_train, y_train, x_test, k, s)
    np.testing.assert_allclose(model.predict_proba(x_test), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(x_test), (expected > 0.5).astype(int))


def test_mlknn_tables_are_distributions():
    x_train, y_train, _ = random_problem(3)
    model = MLkNN(k=10, s=1.0).fit(x_train, y_train)
    np.testing.assert_allclose(model.cond_true_.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.cond_false_.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.prior_, (1 + y_train.sum(axis=0)) / (2 + len(y_train)))


def test_mlknn_learns_clustered_labels():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    y = np.eye(3)[rng.integers(0, 3, size=90)]
    x = y @ centres + rng.normal(size=(90, 3))
    model = MLkNN(k=10, s=1.0).fit(x[:60], y[:60])
    assert (model.predict(x[60:]) == y[60:]).all()


def test_mlknn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        MLkNN(k=0)
    with pytest.raises(ValueError, match="must agree"):
        MLkNN().fit(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(RuntimeError, match="fit"):
        MLkNN().predict_proba(np.zeros((1, 2)))


# --------------------------------------------------------------------------- C2AE
def test_pairwise_ranking_loss_by_hand():
    y = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 1.0]], "float32")
    logits = np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 3.0]], "float32")
    got = np.asarray(pairwise_ranking_loss(y, logits))
    expected = [
        (math.exp(0 - 2) + math.exp(1 - 2)) / 2,  # p = 0; q = 1, 2
        0.0,  # no irrelevant label: no pair
        (math.exp(1 - 0) + math.exp(1 - 3)) / 2,  # p = 0, 2; q = 1
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_c2ae_trains_and_predicts():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, :3] > 0).astype("float32")
    model, history = fit_c2ae(
        x, y, hidden_units=32, latent_dim=3, epochs=40, batch_size=32, learning_rate=3e-3
    )
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert set(history.history) >= {"latent_loss", "whitening_loss", "decoder_loss"}
    scores = model.predict(x, verbose=0)
    assert scores.shape == (128, 3) and scores.min() >= 0 and scores.max() <= 1
    assert evaluate(y, scores)["mAP"] > 0.9


def test_c2ae_config_round_trip():
    model = C2AE(num_labels=4, input_dim=5, hidden_units=8, alpha=2.0, decoder_loss="ranking")
    clone = C2AE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.latent_dim == 4
    with pytest.raises(ValueError, match="decoder_loss"):
        C2AE(num_labels=2, input_dim=2, decoder_loss="mse")


# --------------------------------------------------------------------------- linear probe
def test_linear_probe_fits_linear_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(loc=3.0, scale=5.0, size=(200, 8)).astype("float32")
    y = (x[:, :2] > 3.0).astype("float32")
    model = fit_linear_probe(x, y, l2=1e-4, epochs=60, batch_size=64)
    scores = model.predict(x, verbose=0)
    assert scores.shape == (200, 2)
    assert evaluate(y, scores)["O-F1"] > 0.9
    assert int(model.optimizer.iterations.numpy()) == 60 * 4  # 60 passes of ceil(200/64) batches
