"""Label-set retrieval scores against a loop-by-loop numpy reference."""

import numpy as np
import pytest

from retdm_keras.label_set_scores import label_set_scores


def reference(u, g, sets, temperature, distance):
    out = np.zeros((len(u), sets.shape[1]))
    for i, row in enumerate(u):
        d = np.array([np.sum((row - gs) ** 2) for gs in g])
        if distance == "euclidean":
            d = np.sqrt(d)
        logits = -d / temperature
        w = np.exp(logits - logits.max())
        w /= w.sum()
        out[i] = sum(w_s * s for w_s, s in zip(w, sets, strict=True))
    return out


@pytest.mark.parametrize("distance", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_matches_numpy(distance, temperature):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 6)) * 2
    g = rng.normal(size=(7, 6)) * 2
    sets = (rng.random((7, 4)) < 0.5).astype(np.float64)
    got = label_set_scores(
        u.astype("float32"), g.astype("float32"), sets.astype("float32"), temperature, distance
    )
    np.testing.assert_allclose(
        np.asarray(got), reference(u, g, sets, temperature, distance), rtol=1e-4, atol=1e-5
    )


def test_scores_are_probabilities_and_far_distances_are_finite():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(3, 4)).astype("float32") * 100  # huge distances
    g = rng.normal(size=(5, 4)).astype("float32")
    sets = (rng.random((5, 3)) < 0.5).astype("float32")
    q = np.asarray(label_set_scores(u, g, sets))
    assert np.all(np.isfinite(q)) and q.min() >= 0.0 and q.max() <= 1.0 + 1e-6


def test_bad_arguments():
    u = np.zeros((1, 2), "float32")
    with pytest.raises(ValueError, match="distance"):
        label_set_scores(u, u, u, distance="cosine")
    with pytest.raises(ValueError, match="temperature"):
        label_set_scores(u, u, u, temperature=0.0)


# ----------------------------------------------------------------------------- in the model
def trained_feature_model(weight):
    import keras

    from retdm_keras import RETDM, fit_stages
    from retdm_keras.data import feature_dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 7)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(30) % 4]
    y[::3, 1] = 1.0
    keras.utils.set_random_seed(0)
    model = RETDM(
        4, backbone="mlp", input_dim=7, embed_dim=8, label_hidden_units=8, label_set_weight=weight
    )
    fit_stages(model, feature_dataset(x, y, batch_size=10), epochs=(1, 1, 1), verbose=0)
    return model, x, y


def test_model_mixes_classifier_and_retrieval_scores(tmp_path):
    import keras

    model, x, y = trained_feature_model(0.4)
    distinct = np.unique(y, axis=0)
    assert sorted(map(tuple, model.label_sets)) == sorted(
        tuple(np.flatnonzero(row).tolist()) for row in distinct
    )
    sets = np.zeros((len(model.label_sets), 4), np.float64)
    for i, labels in enumerate(model.label_sets):
        sets[i, labels] = 1.0
    r = model.embedding_norm

    def sphere(e):
        e = np.asarray(e, np.float64)
        return r * e / np.linalg.norm(e, axis=1, keepdims=True)

    u = model.image_embedder(x, training=False)
    p = np.asarray(model.classification_head(u), np.float64)
    q = reference(sphere(u), sphere(model.label_embedder(sets.astype("float32"))), sets, 1.0,
                  "sqeuclidean")  # fmt: skip
    np.testing.assert_allclose(model.predict(x, verbose=0), 0.6 * p + 0.4 * q, atol=1e-5)
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.label_sets == model.label_sets and loaded.label_set_weight == 0.4
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_weight_zero_is_the_classifier_alone():
    model, x, _ = trained_feature_model(0.0)
    u = model.image_embedder(x, training=False)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), np.asarray(model.classification_head(u)), atol=1e-6
    )


def test_mixed_model_exports_to_onnx(tmp_path):
    import onnxruntime as ort

    from retdm_keras.export import export_model

    model, x, _ = trained_feature_model(0.5)
    path = export_model(model, tmp_path / "mixed.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)


def test_bad_weight_is_an_error():
    from retdm_keras import RETDM

    with pytest.raises(ValueError, match="label_set_weight"):
        RETDM(4, backbone="mlp", input_dim=7, label_set_weight=1.5)


def test_bce_model_predicts_with_the_classifier_alone():
    """λ = 0 trains no metric space: retrieval from an untrained g must not leak in."""
    import keras

    from retdm_keras import RETDM, fit_stages
    from retdm_keras.data import feature_dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 7)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(30) % 4]
    keras.utils.set_random_seed(0)
    model = RETDM(4, backbone="mlp", input_dim=7, embed_dim=8, lam=0.0, mu=0.0)
    fit_stages(model, feature_dataset(x, y, batch_size=10), epochs=(1, 0, 1), verbose=0)
    assert model.label_sets  # recorded by the joint stage's prepare_training
    u = model.image_embedder(x, training=False)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), np.asarray(model.classification_head(u)), atol=1e-6
    )
