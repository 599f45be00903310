"""Zero-shot SDL: loss vs a loop reference, any-label-count scoring, saving, metrics, ConSE."""

import json
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import data_dir
from sklearn.metrics import average_precision_score

from retdm_keras.zero_shot import (
    SDL,
    SDLHead,
    conse_scores,
    embed_label_names,
    evaluate_zero_shot,
    evaluate_zsl_gzsl,
    label_scores,
    load_label_vectors,
    sdl_loss,
)


# ----------------------------------------------------------------------------- references
def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def reference_scores(matrix, w):
    b, _, m = matrix.shape
    out = np.empty((b, len(w)))
    for i in range(b):
        for j in range(len(w)):
            out[i, j] = max(float(matrix[i, :, k] @ w[j]) for k in range(m))
    return out


def reference_sdl_loss(matrix, y, w, lam):
    """The SDL loss with explicit loops (float64)."""
    scores = reference_scores(matrix, w)
    num_labels, dim = w.shape
    m = matrix.shape[2]
    losses = []
    for i in range(len(y)):
        pos = [j for j in range(num_labels) if y[i, j] == 1]
        neg = [j for j in range(num_labels) if y[i, j] != 1]
        if not pos:
            continue
        omega = 1.0
        if len(pos) > 1:
            omega += sum(np.var([w[p, d] for p in pos], ddof=1) for d in range(dim))
        rank = 0.0
        for p in pos:
            for n in neg:
                rank += np.log1p(np.exp(scores[i, n] - scores[i, p]))
        rank = omega * rank / len(pos)
        reg = 0.0
        if m > 1:
            reg = sum(np.var(matrix[i, d, :], ddof=1) for d in range(dim))
        losses.append(rank if lam is None else (1 - lam) * rank + lam * reg)
    return (float(np.mean(losses)) if losses else 0.0), scores


def loss_case(seed, num_vectors=3, b=6, num_labels=7, dim=5):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(b, dim, num_vectors))
    w = unit(rng.normal(size=(num_labels, dim)))
    y = (rng.random((b, num_labels)) < 0.35).astype("float32")
    y[0] = 0.0  # no positive: skipped
    y[1] = 0.0
    y[1, rng.integers(num_labels)] = 1.0  # |P| = 1: ω = 1
    y[2] = 1.0  # no negative: empty pair sum
    return matrix, y, w


# ----------------------------------------------------------------------------- loss
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.3, 0.8, None])
def test_sdl_loss_matches_loop_reference(seed, lam):
    matrix, y, w = loss_case(seed)
    expected, scores = reference_sdl_loss(matrix, y, w, lam)
    got = sdl_loss(scores.astype("float32"), matrix.astype("float32"), y, w, lam=lam)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    tf_scores = label_scores(tf.constant(matrix, tf.float32), tf.constant(w, tf.float32))
    np.testing.assert_allclose(tf_scores.numpy(), scores, rtol=1e-5, atol=1e-6)


def test_sdl_loss_single_principal_vector_and_unnormalised_words():
    matrix, y, w = loss_case(5, num_vectors=1)
    expected, scores = reference_sdl_loss(matrix, y, w, 0.3)
    got = sdl_loss(scores.astype("float32"), matrix.astype("float32"), y, 3.0 * w, lam=0.3)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_sdl_loss_per_image_and_no_positive_batch():
    matrix, y, w = loss_case(3)
    scores = reference_scores(matrix, w).astype("float32")
    per_image = sdl_loss(scores, matrix.astype("float32"), y, w, reduction="none").numpy()
    assert per_image[0] == 0.0 and np.isfinite(per_image).all()
    a = tf.Variable(matrix.astype("float32"))
    with tf.GradientTape() as tape:
        loss = sdl_loss(label_scores(a, w.astype("float32")), a, np.zeros_like(y), w)
    assert float(loss) == 0.0
    assert np.isfinite(tape.gradient(loss, a).numpy()).all()


def test_sdl_loss_is_stable_for_huge_score_gaps():
    a = tf.Variable(np.zeros((1, 2, 2), "float32"))
    with tf.GradientTape() as tape:
        scores = tf.constant([[-5e3, 5e3]]) + 0.0 * tf.reduce_sum(a)
        loss = sdl_loss(scores, a, [[1.0, 0.0]], np.eye(2), lam=None)
    np.testing.assert_allclose(float(loss), 1e4, rtol=1e-6)
    assert np.isfinite(tape.gradient(loss, a).numpy()).all()


# ----------------------------------------------------------------------------- head / model
def test_head_is_the_reshaped_bias_free_dense_and_scores_any_label_count():
    rng = np.random.default_rng(0)
    head = SDLHead(word_dim=4, num_vectors=3)
    features = rng.normal(size=(5, 6)).astype("float32")
    head.build((None, 6))
    assert len(head.weights) == 1  # no bias
    kernel = head.embedding.kernel.numpy()
    expected_a = (features @ kernel).reshape(5, 4, 3)
    np.testing.assert_allclose(head.principal_vectors(features).numpy(), expected_a, rtol=1e-5)
    for num_labels in (2, 11):
        w = rng.normal(size=(num_labels, 4))
        got = head(features, w.astype("float32")).numpy()
        np.testing.assert_allclose(got, reference_scores(expected_a, unit(w)), rtol=1e-4)


NUM_ALL, NUM_SEEN, DIM, FEATURES = 80, 48, 16, 12


def word_vectors():
    return unit(np.random.default_rng(1).normal(size=(NUM_ALL, DIM))).astype("float32")


def feature_data(n=40):
    """Features whose labels are a noisy linear function of them (learnable)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    logits = x @ rng.normal(size=(FEATURES, NUM_ALL))
    y = (logits > np.quantile(logits, 0.93, axis=1, keepdims=True)).astype("float32")
    return x, y


def tiny_sdl(**kwargs):
    keras.utils.set_random_seed(0)
    defaults = dict(backbone="identity", input_dim=FEATURES, num_vectors=3)
    defaults.update(kwargs)
    return SDL(word_vectors()[:NUM_SEEN], **defaults)


def test_train_on_48_seen_labels_then_score_80():
    model = tiny_sdl()
    x, y = feature_data()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(x, y[:, :NUM_SEEN], batch_size=20, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    all_scores = model.score(x, word_vectors(), batch_size=16)
    assert all_scores.shape == (len(x), NUM_ALL)
    seen_scores = model.predict({"features": x, "index": np.arange(len(x))}, verbose=0)
    np.testing.assert_allclose(all_scores[:, :NUM_SEEN], seen_scores, rtol=1e-5, atol=1e-5)
    assert model.principal_vectors(x).shape == (len(x), DIM, 3)
    evaluated = model.evaluate(x, y[:, :NUM_SEEN], verbose=0, return_dict=True)
    assert set(evaluated) == {"loss", "rank_loss", "reg_loss"}


@pytest.mark.parametrize(
    "kwargs, inputs",
    [
        ({}, np.random.default_rng(3).normal(size=(4, FEATURES)).astype("float32")),
        (
            dict(backbone="tiny_cnn", image_size=16, embed_dim=8, input_dim=None),
            np.random.default_rng(3).uniform(0, 255, size=(4, 16, 16, 3)).astype("float32"),
        ),
    ],
    ids=["identity", "tiny_cnn"],
)
def test_keras_round_trip_gives_identical_scores(tmp_path, kwargs, inputs):
    names = [f"label{j}" for j in range(NUM_SEEN)]
    model = tiny_sdl(lam=None, label_names=names, **kwargs)
    model.compile(optimizer="adam")
    y = np.eye(NUM_SEEN, dtype="float32")[[0, 5, 5, 9]]
    model.fit(inputs, y, epochs=1, verbose=0)  # saves a built optimizer too
    path = tmp_path / "sdl.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SDL)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.label_vectors, model.label_vectors)
    np.testing.assert_array_equal(
        loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0)
    )
    np.testing.assert_array_equal(
        loaded.score(inputs, word_vectors()), model.score(inputs, word_vectors())
    )


def test_model_argument_errors():
    with pytest.raises(ValueError, match="input_dim"):
        SDL(word_vectors(), backbone="identity")
    with pytest.raises(ValueError, match="num_labels"):
        SDL(word_vectors(), num_labels=3, backbone="identity", input_dim=4)
    with pytest.raises(ValueError, match="num_labels and word_dim"):
        SDL(backbone="identity", input_dim=4)
    model = tiny_sdl()
    with pytest.raises(ValueError, match="own loss"):
        model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="dimension"):
        model.score(np.zeros((2, FEATURES), "float32"), np.ones((3, DIM + 1)))


# ----------------------------------------------------------------------------- evaluation
def test_evaluate_zero_shot_by_hand():
    y = np.array(
        [
            [1, 1, 0, 0, 1],
            [0, 0, 1, 1, 0],
            [1, 0, 1, 0, 0],  # no positive among the ranked labels 1, 3, 4: dropped
            [0, 1, 0, 1, 0],
        ]
    )
    s = np.array(
        [
            [0.0, 0.9, 0.0, 0.1, 0.5],  # ranking 1, 4, 3 -> hits@2 = 2
            [0.0, 0.2, 0.0, 0.3, 0.7],  # ranking 4, 3, 1 -> hits@2 = 1
            [0.0, 0.5, 0.0, 0.5, 0.5],
            [0.0, 0.1, 0.0, 0.2, 0.3],  # ranking 4, 3, 1 -> hits@2 = 1
        ]
    )
    out = evaluate_zero_shot(y, s, [1, 3, 4], top_k=(2, 10))
    assert out["num_images"] == 3 and out["num_images_dropped"] == 1
    assert out["num_labels"] == 3 and out["num_labels_with_positives"] == 3
    assert out["P@2"] == pytest.approx(4 / 6)
    assert out["R@2"] == pytest.approx(4 / 5)
    assert out["F1@2"] == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert out["P@10"] == pytest.approx(5 / 9) and out["R@10"] == 1.0  # K capped at 3
    kept = [0, 1, 3]
    ap = [average_precision_score(y[kept, j], s[kept, j]) for j in (1, 3, 4)]
    assert out["mAP"] == pytest.approx(np.mean(ap))
    narrow = evaluate_zero_shot(y, s[:, [1, 3, 4]], [1, 3, 4], top_k=(2, 10))
    assert narrow == out


def test_evaluate_zero_shot_random_vs_sklearn_and_loops():
    rng = np.random.default_rng(4)
    y = (rng.random((30, 12)) < 0.15).astype(int)
    s = rng.random((30, 12))
    ranked = np.array([2, 5, 7, 8, 11])
    out = evaluate_zero_shot(y, s, ranked, top_k=(3,))
    keep = [i for i in range(30) if y[i, ranked].any()]
    labels = [j for j in ranked if y[keep, j].any()]
    expected_map = np.mean([average_precision_score(y[keep, j], s[keep, j]) for j in labels])
    hits = 0
    for i in keep:
        top = sorted(ranked, key=lambda j, i=i: -s[i, j])[:3]
        hits += sum(y[i, j] for j in top)
    assert out["mAP"] == pytest.approx(expected_map)
    assert out["num_labels_with_positives"] == len(labels)
    assert out["P@3"] == pytest.approx(hits / (3 * len(keep)))
    assert out["R@3"] == pytest.approx(hits / y[keep][:, ranked].sum())
    both = evaluate_zsl_gzsl(y, s, seen=[0, 1, 2], unseen=[5, 7])
    assert both["zsl"] == evaluate_zero_shot(y, s, [5, 7])
    assert both["gzsl"] == evaluate_zero_shot(y, s, [0, 1, 2, 5, 7])


def test_conse_scores_match_a_loop():
    rng = np.random.default_rng(5)
    probs = rng.random((6, 7))
    probs[3] = 0.0
    seen, target = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))
    for top_t in (3, 50):
        got = conse_scores(probs, seen, target, top_t=top_t)
        expected = np.zeros((6, 5))
        for i in range(6):
            top = sorted(range(7), key=lambda s, i=i: -probs[i, s])[:top_t]
            total = sum(probs[i, s] for s in top)
            for j in range(5):
                if total > 0:
                    expected[i, j] = (
                        sum(probs[i, s] * unit(seen[s]) @ unit(target[j]) for s in top) / total
                    )
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- label vectors
def test_load_label_vectors_real_coco_json():
    path = data_dir() / "label_vectors" / "coco80_glove300.json"
    if not path.exists():
        pytest.skip(f"{path} not found (set RETDM_DATA_DIR)")
    lv = load_label_vectors(path)
    assert len(lv) == 80 and lv.dim == 300 and lv.names[0] == "person"
    np.testing.assert_allclose(np.linalg.norm(lv.vectors, axis=1), 1.0, rtol=1e-6)
    assert len(lv.seen) == 48 and len(lv.unseen) == 17
    assert not set(lv.seen) & set(lv.unseen)
    assert lv.subset(lv.unseen).names == [lv.names[j] for j in lv.unseen]


def test_load_label_vectors_files(tmp_path):
    vectors = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]])
    np.save(tmp_path / "words.npy", vectors)
    (tmp_path / "words.txt").write_text("cat\ndog\nhair drier\n")
    lv = load_label_vectors(tmp_path / "words.npy")
    assert lv.names == ["cat", "dog", "hair drier"] and lv.seen is None
    np.testing.assert_allclose(lv.vectors, unit(vectors), rtol=1e-6)
    assert load_label_vectors(tmp_path / "words.npy", names=["a", "b", "c"]).names[0] == "a"
    with pytest.raises(ValueError, match="names"):
        load_label_vectors(tmp_path / "words.npy", names=["a", "b"])
    data = {"names": ["a", "b"], "vectors": [[2.0, 0.0], [0.0, 0.0]]}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="all zeros"):
        load_label_vectors(tmp_path / "bad.json")
    data = {"names": ["a", "b"], "vectors": [[2.0, 0.0], [1.0, 1.0]]}
    data["zero_shot_split"] = {"seen": [0], "unseen": [0]}
    (tmp_path / "overlap.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="overlap"):
        load_label_vectors(tmp_path / "overlap.json")


def test_embed_label_names_without_and_with_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match="sentence-transformers"):
        embed_label_names(["cat"])

    class FakeEncoder:
        def __init__(self, name):
            self.name = name

        def encode(self, names, batch_size, convert_to_numpy):
            return np.array([[len(n), 1.0] for n in names])

    fake = types.ModuleType("sentence_transformers")
    fake.SentenceTransformer = FakeEncoder
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    got = embed_label_names(["cat", "hair drier"], model_name="any")
    np.testing.assert_allclose(got, unit(np.array([[3.0, 1.0], [10.0, 1.0]])), rtol=1e-6)
