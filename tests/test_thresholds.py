"""Threshold calibration: optimal by brute force, top-k, config and ``.keras`` round trips."""

import json

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import f1_score

from retdm_keras import RETDM
from retdm_keras.thresholds import (
    THRESHOLD_METRICS,
    Thresholds,
    apply_to_model,
    calibrate,
    compare_thresholds,
)


@st.composite
def labelled_scores(draw, max_n=12, max_c=4):
    """(y, p): 0/1 labels and scores on a coarse grid, so ties are common."""
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    y = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(0, 1)))
    ticks = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(0, 10)))
    return y, ticks / 10.0


def micro_f1(y, pred):
    """O-F1 with sklearn: micro F1 is the binary F1 of all (sample, label) pairs pooled (an
    ``(N, 1)`` array would be read as binary, not multi-label, so flatten explicitly)."""
    return f1_score(np.ravel(y), np.ravel(pred), zero_division=0.0)


def brute_force_best_f1(y, s):
    """Best F1 of ``s >= t`` over every distinct score as ``t`` (and "predict nothing")."""
    thresholds = [*np.unique(s), np.inf]
    return max(f1_score(y, s >= t, zero_division=0.0) for t in thresholds)


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_per_class_f1_matches_brute_force(data):
    y, p = data
    t = calibrate(y, p, "per_class_f1")
    assert len(t.values) == y.shape[1]
    for j in range(y.shape[1]):
        got = f1_score(y[:, j], p[:, j] >= t.values[j], zero_division=0.0)
        if y[:, j].any():
            assert got == pytest.approx(brute_force_best_f1(y[:, j], p[:, j]))
        else:
            assert t.values[j] == 0.5
    np.testing.assert_array_equal(t.apply(p), p >= np.asarray(t.values))


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_global_f1_matches_brute_force_of_micro_f1(data):
    y, p = data
    t = calibrate(y, p, "global_f1")
    if not y.any():
        assert t.values == 0.5
        return
    got = micro_f1(y, p >= t.values)
    best = max(micro_f1(y, p >= v) for v in [*np.unique(p), np.inf])
    assert got == pytest.approx(best)


@settings(max_examples=40, deadline=None)
@given(labelled_scores(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_grid_search_picks_the_best_grid_value(data, grid):
    y, p = data
    t = calibrate(y, p, "per_class_f1", grid=grid)
    for j in np.flatnonzero(y.any(axis=0)):
        assert t.values[j] in set(np.float64(grid))
        best = max(f1_score(y[:, j], p[:, j] >= g, zero_division=0.0) for g in grid)
        assert f1_score(y[:, j], p[:, j] >= t.values[j], zero_division=0.0) == pytest.approx(best)


def test_per_class_optimum_known_by_construction():
    rng = np.random.default_rng(0)
    n = 40
    y = np.zeros((n, 3), int)
    y[: n // 2, 0] = 1
    y[::4, 1] = 1
    p = np.empty((n, 3))
    # label 0 is separable above 0.6, label 1 below 0.5 (an under-confident label)
    p[:, 0] = np.where(y[:, 0], rng.uniform(0.6, 0.9, n), rng.uniform(0.1, 0.3, n))
    p[:, 1] = np.where(y[:, 1], rng.uniform(0.2, 0.3, n), rng.uniform(0.0, 0.1, n))
    p[:, 2] = rng.uniform(0, 1, n)  # label 2 never occurs
    t = calibrate(y, p, "per_class_f1")
    assert p[y[:, 0] == 0, 0].max() < t.values[0] <= p[y[:, 0] == 1, 0].min()
    assert p[y[:, 1] == 0, 1].max() < t.values[1] <= p[y[:, 1] == 1, 1].min()
    assert t.values[2] == 0.5
    np.testing.assert_array_equal(t.apply(p)[:, :2], y[:, :2])
    # the default 0.5 misses every label-1 positive; the calibrated rule finds them all
    table = compare_thresholds(y, p, t)
    assert table["per_class_f1"]["C-R"] > table["0.5"]["C-R"]


def test_ties_go_to_the_threshold_closest_to_half():
    y = np.array([[1], [0], [0], [1]])
    # "top one" (threshold 0.75) and "all four" (0.1) both give F1 = 2/3: 0.75 is closer
    t = calibrate(y, np.array([[0.9], [0.6], [0.4], [0.1]]))
    assert t.values[0] == pytest.approx(0.75)
    # now "all four" is at 0.3, closer to 0.5 than 0.75
    t = calibrate(y, np.array([[0.9], [0.6], [0.4], [0.3]]))
    assert t.values[0] == pytest.approx(0.3)


def test_thresholds_survive_float32():
    # adjacent float32 scores: the float64 midpoint would round onto the lower score
    low = np.float32(0.3)
    high = np.nextafter(low, np.float32(1))
    y = np.array([[1], [0]])
    p = np.array([[high], [low]], dtype=np.float32)
    t = calibrate(y, p)
    assert np.float32(t.values[0]) > low
    np.testing.assert_array_equal(p >= np.float32(t.values[0]), y.astype(bool))


@settings(max_examples=40, deadline=None)
@given(labelled_scores(max_c=5))
def test_top_k_predicts_exactly_k_and_chooses_the_best_k(data):
    y, p = data
    c = y.shape[1]
    for k in range(1, c + 1):
        pred = calibrate(y, p, "top_k", k=k).apply(p)
        assert np.all(pred.sum(axis=1) == k)
        # the chosen labels are the highest scores of their row
        chosen_min = np.where(pred == 1, p, np.inf).min(axis=1)
        others_max = np.where(pred == 0, p, -np.inf).max(axis=1)
        assert np.all(chosen_min >= others_max)
    t = calibrate(y, p, "top_k")
    scores = [micro_f1(y, calibrate(y, p, "top_k", k=k).apply(p)) for k in range(1, c + 1)]
    assert t.k == int(np.argmax(scores)) + 1


@pytest.mark.parametrize("method", ["per_class_f1", "global_f1", "top_k"])
def test_config_round_trip_through_json(method):
    rng = np.random.default_rng(1)
    y = (rng.random((20, 4)) < 0.3).astype(int)
    p = rng.random((20, 4))
    t = calibrate(y, p, method)
    again = Thresholds.from_config(json.loads(json.dumps(t.to_config())))
    assert again == t
    np.testing.assert_array_equal(again.apply(p), t.apply(p))


def test_compare_thresholds_reports_both_rules():
    rng = np.random.default_rng(2)
    y = (rng.random((30, 5)) < 0.3).astype(int)
    p = np.clip(0.3 * y + rng.random((30, 5)) * 0.5, 0, 1)
    t = calibrate(y, p, "global_f1")
    table = compare_thresholds(y, p, t)
    assert list(table) == ["0.5", "global_f1"]
    assert all(list(column) == list(THRESHOLD_METRICS) for column in table.values())
    # calibrated on the same data, the O-F1-optimal threshold cannot be worse than 0.5
    assert table["global_f1"]["O-F1"] >= table["0.5"]["O-F1"]


def test_apply_to_model_round_trips_through_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = RETDM(
        4,
        backbone="tiny_cnn",
        image_size=16,
        embed_dim=8,
        label_hidden_units=8,
        label_names=["a", "b", "c", "d"],
    )
    images = np.random.default_rng(0).uniform(0, 255, (10, 16, 16, 3)).astype("float32")
    p = model.predict(images, verbose=0)
    y = (p >= np.median(p, axis=0)).astype(int)  # the optimum is far from 0.5 per label
    t = calibrate(y, p, "per_class_f1")
    apply_to_model(model, t)
    assert model.decision_threshold == pytest.approx(list(t.values))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.thresholds == model.thresholds
    names = np.array(["a", "b", "c", "d"])
    expected = [list(names[row == 1]) for row in t.apply(loaded.predict(images, verbose=0))]
    assert loaded.predict_labels(images) == expected == model.predict_labels(images)
    assert any(len(row) for row in expected)

    apply_to_model(model, calibrate(y, p, "global_f1"))
    assert isinstance(model.thresholds, float) and model.top_k is None
    with pytest.raises(ValueError, match="4 values"):
        apply_to_model(model, [0.5, 0.5])


def test_apply_to_model_top_k_replaces_thresholds(tmp_path):
    keras.utils.set_random_seed(0)
    names = np.array(["a", "b", "c", "d"])
    model = RETDM(
        4,
        backbone="tiny_cnn",
        image_size=16,
        embed_dim=8,
        label_hidden_units=8,
        label_names=list(names),
        thresholds=[0.1, 0.2, 0.3, 0.4],
    )
    images = np.random.default_rng(1).uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    p = model.predict(images, verbose=0)
    y = np.eye(4, dtype=int)[np.arange(6) % 4]
    rule = calibrate(y, p, "top_k", k=2)
    apply_to_model(model, rule)
    assert model.top_k == 2 and model.thresholds is None
    model.save(tmp_path / "k.keras")
    loaded = keras.models.load_model(tmp_path / "k.keras")
    assert loaded.top_k == 2 and loaded.thresholds is None
    expected = [list(names[row == 1]) for row in rule.apply(p)]
    assert loaded.predict_labels(images) == expected
    assert all(len(row) == 2 for row in expected)
    # a threshold rule replaces the top-k rule again
    apply_to_model(loaded, calibrate(y, p, "per_class_f1"))
    assert loaded.top_k is None and len(loaded.thresholds) == 4
    with pytest.raises(ValueError, match="larger than"):
        apply_to_model(loaded, Thresholds("top_k", None, 5))
    with pytest.raises(ValueError, match="apply_to_model"):
        rule.for_model()


def test_clear_errors():
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.8, 0.1], [0.3, 0.6]])
    with pytest.raises(ValueError, match="method"):
        calibrate(y, p, "best")
    with pytest.raises(ValueError, match="same shape"):
        calibrate(y, p[:, :1])
    with pytest.raises(ValueError, match="k must be"):
        calibrate(y, p, "top_k", k=3)
    with pytest.raises(ValueError, match="0/1"):
        calibrate(y * 2, p)
    with pytest.raises(ValueError, match="per-class"):
        Thresholds("per_class_f1", (0.5,)).apply(p)
    with pytest.raises(ValueError, match="k"):
        Thresholds("top_k", None, 0)
