"""Tests for retdm_keras.metrics: hand-computed cases, sklearn references, Keras metrics."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from retdm_keras.metrics import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    MeanAveragePrecision,
    OverallF1,
    evaluate,
    format_table,
    per_label_average_precision,
)

RANKING = ("ranking_loss", "one_error", "coverage", "average_precision")


def _random_case(seed: int, n: int = 40, c: int = 7, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.35).astype(int)
    s = rng.random((n, c))
    if ties:
        s = np.round(s, 1)
    return y, s


def _sklearn_reference(y, s, threshold=0.5) -> dict[str, float]:
    """All 12 metrics from sklearn (ranking metrics on rows with >= 1 true label)."""
    pred = (s >= threshold).astype(int)
    cp = skm.precision_score(y, pred, average="macro", zero_division=0)
    cr = skm.recall_score(y, pred, average="macro", zero_division=0)
    op = skm.precision_score(y, pred, average="micro", zero_division=0)
    orr = skm.recall_score(y, pred, average="micro", zero_division=0)
    keep = y.any(axis=1)
    yk, sk = y[keep], s[keep]
    one_err = np.mean(yk[np.arange(len(yk)), sk.argmax(axis=1)] == 0)
    aps = [
        skm.average_precision_score(y[:, j], s[:, j]) for j in range(y.shape[1]) if y[:, j].any()
    ]
    return {
        "C-P": cp,
        "C-R": cr,
        "C-F1": 0.0 if cp + cr == 0 else 2 * cp * cr / (cp + cr),
        "O-P": op,
        "O-R": orr,
        "O-F1": 0.0 if op + orr == 0 else 2 * op * orr / (op + orr),
        "hamming_loss": skm.hamming_loss(y, pred),
        "ranking_loss": skm.label_ranking_loss(yk, sk),
        "one_error": one_err,
        "coverage": skm.coverage_error(yk, sk) - 1,
        "average_precision": skm.label_ranking_average_precision_score(yk, sk),
        "mAP": float(np.mean(aps)),
    }


def _assert_close(got: dict, want: dict, tol: float = 1e-9) -> None:
    for k in METRIC_NAMES:
        assert got[k] == pytest.approx(want[k], abs=tol), k


# --------------------------------------------------------------------------- #
# evaluate(): structure and hand-computed cases
# --------------------------------------------------------------------------- #
def test_names_order_and_types():
    y, s = _random_case(0)
    r = evaluate(y, s)
    assert tuple(r) == METRIC_NAMES
    assert len(METRIC_NAMES) == 12
    assert all(type(v) is float for v in r.values())
    assert LOWER_IS_BETTER == {"hamming_loss", "ranking_loss", "one_error", "coverage"}


def test_hand_computed_3x3():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    s = np.array([[0.9, 0.6, 0.4], [0.2, 0.8, 0.3], [0.7, 0.1, 0.5]])
    # pred (>= 0.5) = [[1,1,0],[0,1,0],[1,0,1]]
    # label 0: TP=2 FP=0 FN=0 -> P=1,   R=1
    # label 1: TP=1 FP=1 FN=1 -> P=1/2, R=1/2
    # label 2: TP=0 FP=1 FN=1 -> P=0,   R=0
    # C-P = C-R = 1.5/3 = 0.5, C-F1 = 0.5
    # pooled TP=3 FP=2 FN=2 -> O-P = O-R = O-F1 = 0.6
    # wrong cells: (0,1),(2,1),(0,2),(2,2) -> hamming 4/9
    # ranking loss: row0 pair (rel 2, irr 1): 0.6 >= 0.4 wrong -> 1/2; row1 -> 0;
    #   row2 pair (rel 1, irr 2): 0.5 >= 0.1 wrong -> 1/2  => (1/2 + 0 + 1/2)/3 = 1/3
    # one-error: argmax = 0, 1, 0 -> all relevant -> 0
    # coverage: row0 worst relevant rank 3 -> 2; row1 rank 1 -> 0; row2 rank 3 -> 2 => 4/3
    # LRAP: row0 (1 + 2/3)/2 = 5/6; row1 1; row2 (1 + 2/3)/2 = 5/6 => 8/9
    # AP per label: label0 ranking (+,+,-) -> 1; label1 (+,-,+) -> (1 + 2/3)/2 = 5/6;
    #   label2 (-,+,-) -> 1/2  => mAP = (1 + 5/6 + 1/2)/3 = 7/9
    want = {
        "C-P": 0.5,
        "C-R": 0.5,
        "C-F1": 0.5,
        "O-P": 0.6,
        "O-R": 0.6,
        "O-F1": 0.6,
        "hamming_loss": 4 / 9,
        "ranking_loss": 1 / 3,
        "one_error": 0.0,
        "coverage": 4 / 3,
        "average_precision": 8 / 9,
        "mAP": 7 / 9,
    }
    _assert_close(evaluate(y, s), want, tol=1e-12)
    _assert_close(_sklearn_reference(y, s), want, tol=1e-12)


def test_hand_computed_ties():
    # One sample, relevant label 0 tied with irrelevant label 1.
    # Tie counts as a wrong pair -> ranking_loss 1; pessimistic rank of label 0 is 2
    # -> coverage 1, LRAP 1/2; argmax picks the first max (label 0) -> one_error 0.
    # mAP: label 0 has a single positive sample -> AP 1; label 1 has none -> skipped.
    r = evaluate([[1, 0]], [[0.5, 0.5]])
    assert r["ranking_loss"] == 1.0
    assert r["coverage"] == 1.0
    assert r["average_precision"] == 0.5
    assert r["one_error"] == 0.0
    assert r["mAP"] == 1.0
    # Same ties in the other order: argmax picks label 0, which is now irrelevant.
    assert evaluate([[0, 1]], [[0.5, 0.5]])["one_error"] == 1.0


def test_tied_scores_in_map():
    # Column scores (0.8+, 0.8-, 0.3+): the two 0.8s form one threshold with
    # precision 1/2 and recall 1/2; then precision 2/3 at recall 1.
    # AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12.
    y = np.array([[1], [0], [1]])
    s = np.array([[0.8], [0.8], [0.3]])
    assert evaluate(y, s)["mAP"] == pytest.approx(7 / 12)
    assert skm.average_precision_score(y[:, 0], s[:, 0]) == pytest.approx(7 / 12)


# --------------------------------------------------------------------------- #
# evaluate() against sklearn
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_sklearn_random(seed, ties):
    y, s = _random_case(seed, ties=ties)
    _assert_close(evaluate(y, s), _sklearn_reference(y, s))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_without_true_label_are_excluded(seed):
    y, s = _random_case(seed, n=30, c=5, ties=True)
    y[::3] = 0  # every third row has no true label
    r = evaluate(y, s)
    _assert_close(r, _sklearn_reference(y, s))
    # Removing the empty rows leaves the ranking metrics unchanged.
    keep = y.any(axis=1)
    r_kept = evaluate(y[keep], s[keep])
    for k in RANKING:
        assert r[k] == pytest.approx(r_kept[k], abs=1e-12), k
    # ... while sklearn's own ranking loss would count them as 0 and differ.
    assert skm.label_ranking_loss(y, s) != pytest.approx(r["ranking_loss"])


def test_all_true_row_counts_as_zero_ranking_loss():
    y = np.array([[1, 1, 1], [1, 0, 0]])
    s = np.array([[0.1, 0.2, 0.3], [0.1, 0.9, 0.5]])
    # row0: no (relevant, irrelevant) pair -> 0; row1: both pairs wrong -> 1; mean 1/2
    r = evaluate(y, s)
    assert r["ranking_loss"] == pytest.approx(0.5)
    assert r["ranking_loss"] == pytest.approx(skm.label_ranking_loss(y, s))
    assert r["average_precision"] == pytest.approx(skm.label_ranking_average_precision_score(y, s))


def test_no_true_label_anywhere_gives_nan():
    y = np.zeros((4, 3), dtype=int)
    s = np.random.default_rng(0).random((4, 3))
    r = evaluate(y, s)
    for k in (*RANKING, "mAP"):
        assert math.isnan(r[k]), k
    for k in ("C-P", "C-R", "C-F1", "O-P", "O-R", "O-F1", "hamming_loss"):
        assert math.isfinite(r[k]), k
    assert r["C-R"] == 0.0 and r["O-R"] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_label_without_positive_is_skipped_in_map(seed):
    y, s = _random_case(seed, n=25, c=6, ties=True)
    y[:, 2] = 0
    ap = per_label_average_precision(y, s)
    assert math.isnan(ap[2])
    others = [skm.average_precision_score(y[:, j], s[:, j]) for j in (0, 1, 3, 4, 5)]
    np.testing.assert_allclose(ap[[0, 1, 3, 4, 5]], others, atol=1e-12)
    assert evaluate(y, s)["mAP"] == pytest.approx(np.mean(others), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_threshold_array(seed):
    y, s = _random_case(seed, c=5)
    thr = np.array([0.2, 0.4, 0.5, 0.6, 0.8])
    r = evaluate(y, s, threshold=thr)
    want = _sklearn_reference(y, s, threshold=thr)
    _assert_close(r, want)
    # a constant array behaves like the scalar
    _assert_close(evaluate(y, s, threshold=np.full(5, 0.3)), evaluate(y, s, threshold=0.3))
    # thresholds only affect the threshold-based metrics
    base = evaluate(y, s)
    for k in (*RANKING, "mAP"):
        assert r[k] == base[k]


def test_accepts_bool_and_float_labels_and_float32_scores():
    y, s = _random_case(5)
    ref = evaluate(y, s.astype(np.float32))
    assert evaluate(y.astype(bool), s.astype(np.float32)) == ref
    assert evaluate(y.astype(np.float32), s.astype(np.float32).tolist()) == ref


@pytest.mark.parametrize(
    ("y", "s", "kwargs", "match"),
    [
        (np.zeros(3), np.zeros(3), {}, "y_true must be 2-D"),
        (np.zeros((2, 3)), np.zeros((2, 3, 1)), {}, "scores must be 2-D"),
        (np.zeros((2, 3)), np.zeros((3, 3)), {}, "same shape"),
        (np.zeros((0, 3)), np.zeros((0, 3)), {}, "non-empty"),
        (np.array([[0, 1], [1, 0], [0, 2]]), np.zeros((3, 2)), {}, "0/1.*row is 2"),
        (np.array([[0, 1], [0.5, 0]]), np.zeros((2, 2)), {}, "0/1.*row is 1"),
        (np.zeros((3, 2)), np.array([[0, 1], [0, 0], [np.nan, 0]]), {}, "NaN.*row is 2"),
        (np.zeros((2, 3)), np.zeros((2, 3)), {"threshold": [0.5, 0.5]}, "threshold"),
        (np.zeros((2, 3)), np.zeros((2, 3)), {"threshold": np.zeros((3, 1))}, "threshold"),
        (np.array([["a", "b"]]), np.zeros((1, 2)), {}, "y_true must be numeric"),
    ],
)
def test_invalid_inputs_raise(y, s, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(y, s, **kwargs)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_ranges(data):
    n = data.draw(st.integers(1, 20), label="n")
    c = data.draw(st.integers(1, 8), label="c")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    decimals = data.draw(st.sampled_from([0, 1, 3]), label="decimals")
    p_true = data.draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]), label="p_true")
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < p_true).astype(int)
    s = np.round(rng.random((n, c)), decimals)
    r = evaluate(y, s, threshold=data.draw(st.floats(0, 1), label="threshold"))
    has_true_row = bool(y.any())  # some row has a true label <=> some label has a positive
    for k, v in r.items():
        if k in (*RANKING, "mAP") and not has_true_row:
            assert math.isnan(v), k
            continue
        assert math.isfinite(v), k
        hi = c - 1 if k == "coverage" else 1.0
        assert -1e-12 <= v <= hi + 1e-12, (k, v)


# --------------------------------------------------------------------------- #
# format_table
# --------------------------------------------------------------------------- #
def test_format_table_single_and_multi():
    y, s = _random_case(0)
    r1, r2 = evaluate(y, s), evaluate(y, s, threshold=0.3)
    single = format_table(r1)
    assert "value" in single and "*" not in single
    for k in METRIC_NAMES:
        assert k in single
    assert "hamming_loss ↓" in single and "mAP ↑" in single
    multi = format_table({"RETDM": r1, "BCE": r2}, digits=3)
    header = multi.splitlines()[0]
    assert "RETDM" in header and "BCE" in header
    assert "lower is better" in multi and "*" in multi
    o_f1_row = next(line for line in multi.splitlines() if line.startswith("O-F1"))
    assert f"{r1['O-F1']:.3f}" in o_f1_row and f"{r2['O-F1']:.3f}" in o_f1_row
    # best of a lower-is-better metric is the minimum
    hl_row = next(line for line in multi.splitlines() if line.startswith("hamming_loss"))
    best = min(r1["hamming_loss"], r2["hamming_loss"])
    assert f"{best:.3f}*" in hl_row


def test_format_table_missing_and_invalid():
    r = evaluate(*_random_case(1))
    partial = {k: r[k] for k in ("C-P", "mAP")}
    out = format_table({"full": r, "partial": partial})
    cov_row = next(line for line in out.splitlines() if line.startswith("coverage"))
    assert cov_row.split()[-1] == "-"
    with pytest.raises(ValueError):
        format_table({"a": r, "b": 0.5})
    with pytest.raises(ValueError):
        format_table({})


# --------------------------------------------------------------------------- #
# Streaming Keras metrics
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_map_close_to_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, c = 300, 5
    y = (rng.random((n, c)) < 0.3).astype("float32")
    y[:, 4] = 0  # a label with no positive: skipped
    s = np.clip(0.35 * y + 0.65 * rng.random((n, c)), 0, 1).astype("float32")
    m = MeanAveragePrecision(num_labels=c, num_thresholds=1000)
    for batch in np.array_split(np.arange(n), 4):
        m.update_state(y[batch], s[batch])
    want = np.mean([skm.average_precision_score(y[:, j], s[:, j]) for j in range(4)])
    assert float(m.result()) == pytest.approx(want, abs=0.01)
    m.reset_state()
    assert float(m.result()) == 0.0
    assert float(np.abs(keras.ops.convert_to_numpy(m.pos_counts)).sum()) == 0.0
    m.update_state(y[:100], s[:100])
    want100 = np.mean([skm.average_precision_score(y[:100, j], s[:100, j]) for j in range(4)])
    assert float(m.result()) == pytest.approx(want100, abs=0.01)


def test_streaming_map_exact_on_bin_quantised_scores():
    # With scores already at bin centres the histogram loses nothing, so the
    # streaming value equals the exact mAP (ties included).
    rng = np.random.default_rng(3)
    t = 10
    y = (rng.random((64, 4)) < 0.4).astype("float32")
    s = ((rng.integers(0, t, size=(64, 4)) + 0.5) / t).astype("float32")
    m = MeanAveragePrecision(num_labels=4, num_thresholds=t)
    for batch in np.array_split(np.arange(64), 3):
        m.update_state(y[batch], s[batch])
    assert float(m.result()) == pytest.approx(evaluate(y, s)["mAP"], abs=1e-6)


def test_streaming_map_zero_sample_weight_ignores_batch():
    rng = np.random.default_rng(4)
    y = (rng.random((20, 3)) < 0.5).astype("float32")
    s = rng.random((20, 3)).astype("float32")
    a = MeanAveragePrecision(3, num_thresholds=50)
    a.update_state(y[:10], s[:10])
    b = MeanAveragePrecision(3, num_thresholds=50)
    b.update_state(y[:10], s[:10], sample_weight=np.ones(10))
    b.update_state(y[10:], s[10:], sample_weight=np.zeros(10))
    assert float(a.result()) == pytest.approx(float(b.result()), abs=1e-7)


@pytest.mark.parametrize("threshold", [0.5, 0.3, [0.2, 0.5, 0.7, 0.4]])
def test_overall_f1_streaming_exact(threshold):
    rng = np.random.default_rng(7)
    y = (rng.random((90, 4)) < 0.4).astype("float32")
    s = rng.random((90, 4)).astype("float32")
    m = OverallF1(threshold=threshold)
    for batch in np.array_split(np.arange(90), 5):
        m.update_state(y[batch], s[batch])
    pred = s >= np.asarray(threshold, dtype="float32")
    tp = np.sum(pred & (y == 1))
    fp = np.sum(pred & (y == 0))
    fn = np.sum(~pred & (y == 1))
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert float(m.result()) == pytest.approx(2 * p * r / (p + r), abs=1e-6)
    assert float(m.result()) == pytest.approx(evaluate(y, s, threshold)["O-F1"], abs=1e-6)
    m.reset_state()
    assert float(m.result()) == 0.0


def test_keras_metrics_config_round_trip():
    m = MeanAveragePrecision(num_labels=7, num_thresholds=123, name="val_map")
    m2 = MeanAveragePrecision.from_config(m.get_config())
    assert (m2.num_labels, m2.num_thresholds, m2.name) == (7, 123, "val_map")
    f = OverallF1(threshold=[0.1, 0.9], name="f1")
    f2 = OverallF1.from_config(f.get_config())
    assert f2.threshold == [0.1, 0.9] and f2.name == "f1"
    # registered under the package name, so generic (de)serialisation works
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
    assert isinstance(restored, MeanAveragePrecision) and restored.num_thresholds == 123
    assert keras.saving.get_registered_name(OverallF1) == "retdm_keras>OverallF1"


def test_keras_metrics_inside_fit():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 4)).astype("float32")
    y = (rng.random((64, 3)) < 0.4).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=[MeanAveragePrecision(num_labels=3), OverallF1()],
    )
    hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for key in ("mAP", "O-F1"):
        assert key in hist.history
        v = hist.history[key][-1]
        assert math.isfinite(v) and 0.0 <= v <= 1.0


def test_all_zero_rows_all_one_rows_and_constant_scores_stay_in_range() -> None:
    # rows with no label, rows with every label, and scores that tie everywhere
    y = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 1]], dtype=float)
    for scores in (np.full(y.shape, 0.5), np.zeros(y.shape), np.ones(y.shape)):
        result = evaluate(y, scores)
        for name, value in result.items():
            assert np.isfinite(value), (name, scores[0, 0])
            assert value >= 0.0
            if name != "coverage":
                assert value <= 1.0, name
        # with every score tied, each true label ranks at the bottom: coverage is C - 1
        assert result["coverage"] == pytest.approx(2.0)
        assert result["ranking_loss"] == pytest.approx(skm.label_ranking_loss(y[1:], scores[1:]))
