"""RETDM model: stages freeze the right parts, the loss is the documented one, saving works."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from references import reference_two_way

from retdm_keras import RETDM, fit_stages
from retdm_keras.neighbors import LabelNeighbors

NUM_LABELS = 4
SIZE = 16


def tiny_model(**kwargs):
    keras.utils.set_random_seed(0)
    defaults = dict(backbone="tiny_cnn", image_size=SIZE, embed_dim=8, label_hidden_units=16)
    defaults.update(kwargs)
    return RETDM(NUM_LABELS, **defaults)


def tiny_data(n=12, seed=0, distinct=False):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(n, SIZE, SIZE, 3)).astype("float32")
    if distinct:  # every label set appears exactly once
        codes = rng.permutation(2**NUM_LABELS - 1)[:n] + 1
        labels = ((codes[:, None] >> np.arange(NUM_LABELS)) & 1).astype("float32")
    else:
        labels = (rng.random((n, NUM_LABELS)) < 0.4).astype("float32")
        labels[np.arange(n), np.arange(n) % NUM_LABELS] = 1.0
    return {"images": images, "index": np.arange(n)}, labels


def as_dataset(x, y, batch=6):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def weights_of(layer):
    return [w.numpy().copy() for w in layer.weights]


def changed(before, layer):
    return any(not np.allclose(a, b.numpy()) for a, b in zip(before, layer.weights, strict=True))


@pytest.mark.parametrize(
    "stage, image_side_moves, label_side_moves",
    [("classifier", True, False), ("metric", False, True), ("joint", True, True)],
)
def test_stages_train_the_right_parts(stage, image_side_moves, label_side_moves):
    model = tiny_model()
    x, y = tiny_data()
    model.set_stage(stage)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    if stage != "classifier":
        model.prepare_training(as_dataset(x, y))
    parts = {
        "image_embedder": image_side_moves,
        "classification_head": image_side_moves,
        "label_embedder": label_side_moves,
        "reconstruction_head": label_side_moves,
    }
    before = {name: weights_of(getattr(model, name)) for name in parts}
    model.fit(as_dataset(x, y), epochs=1, verbose=0)
    for name, should_move in parts.items():
        assert changed(before[name], getattr(model, name)) == should_move, (stage, name)


def test_metric_loss_gradient_reaches_f_and_g_in_joint_stage_only_g_in_metric_stage():
    model = tiny_model()
    x, y = tiny_data()
    model.prepare_training(as_dataset(x, y))
    for stage, f_gets_gradient in (("joint", True), ("metric", False)):
        model.set_stage(stage)
        with tf.GradientTape() as tape:
            _, _, _, _, metric_loss, _ = model._compute_losses(x, y, training=True)
        f_vars = model.image_embedder.trainable_weights
        g_vars = model.label_embedder.trainable_weights
        grads = tape.gradient(metric_loss, f_vars + g_vars)
        f_grads, g_grads = grads[: len(f_vars)], grads[len(f_vars) :]
        assert all(g is not None and np.any(g.numpy() != 0) for g in g_grads), stage
        if f_gets_gradient:
            assert any(g is not None and np.any(g.numpy() != 0) for g in f_grads)
        else:
            assert f_vars == []  # frozen: f has no trainable weights in the metric stage


@pytest.mark.parametrize("neighbor_images", ["memory_bank", "exact"])
def test_second_way_moves_f_only_with_exact_neighbour_images(neighbor_images):
    """With bank images (no gradient) the second way trains g only; with exact images, f too."""
    model = tiny_model(neighbor_images=neighbor_images)
    x, y = tiny_data()
    model.prepare_training(as_dataset(x, y))
    model.set_stage("joint")
    f_vars = model.image_embedder.trainable_weights
    g_vars = model.label_embedder.trainable_weights

    def gradients(alpha):
        model.alpha = alpha
        keras.utils.set_random_seed(1)  # the same neighbour images for both alphas
        with tf.GradientTape() as tape:
            _, _, _, _, metric_loss, _ = model._compute_losses(x, y, training=True)
        grads = tape.gradient(metric_loss, f_vars + g_vars)
        return [g.numpy() for g in grads[: len(f_vars)]], [g.numpy() for g in grads[len(f_vars) :]]

    f_two_way, g_two_way = gradients(1.0)
    f_one_way, g_one_way = gradients(0.0)
    same_f = all(np.allclose(a, b, atol=1e-7) for a, b in zip(f_two_way, f_one_way, strict=True))
    assert same_f == (neighbor_images == "memory_bank")
    # the second way always trains the label embedder
    assert not all(np.allclose(a, b) for a, b in zip(g_two_way, g_one_way, strict=True))


@pytest.mark.parametrize("embedding_norm", [None, 2.0])
def test_logged_losses_follow_the_documented_formula(embedding_norm):
    model = tiny_model(
        lam=0.7, mu=1.3, alpha=0.5, margin=0.2, num_neighbors=3, embedding_norm=embedding_norm
    )
    x, y = tiny_data(n=10, distinct=True)  # one image per set: u_jk is deterministic
    model.set_stage("joint")
    model.compile(optimizer="sgd")
    model.prepare_training(as_dataset(x, y, batch=10))
    logs = model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)

    def metric_space(e):
        e = np.asarray(e, np.float64)
        if embedding_norm is None:
            return e
        return embedding_norm * e / np.linalg.norm(e, axis=-1, keepdims=True)

    u = metric_space(model.image_embedder(x["images"]))
    v = metric_space(model.label_embedder(y))
    index = LabelNeighbors(y, num_neighbors=3)
    nbr_labels, ids, mask = index.for_samples(np.arange(10))
    nbr_label_emb = metric_space(model.label_embedder(nbr_labels.reshape(-1, NUM_LABELS)))
    nbr_label_emb = nbr_label_emb.reshape(10, 3, -1)
    member = index.member_indices[index.member_offsets[ids]]  # the only image of each set
    # the margin is given on the unit sphere: r² in squared distances on a sphere of radius r
    margin = 0.2 * (1.0 if embedding_norm is None else embedding_norm**2)
    expected_metric = reference_two_way(
        u, v, nbr_label_emb, u[member], mask, margin=margin, alpha=0.5, distance="sqeuclidean"
    ).mean()
    u_images = model.image_embedder(x["images"], training=False)
    p = np.asarray(model.classification_head(u_images), np.float64)  # the head alone: L_cls
    expected_cls = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    rec = model.reconstruction_head(model.label_embedder(y)).numpy()
    expected_rec = ((rec - y) ** 2).mean()
    assert logs["metric_loss"] == pytest.approx(expected_metric, rel=1e-4)
    assert logs["cls_loss"] == pytest.approx(expected_cls, rel=1e-4)
    assert logs["rec_loss"] == pytest.approx(expected_rec, rel=1e-4)
    expected_total = expected_cls + 0.7 * expected_metric + 1.3 * expected_rec
    assert logs["loss"] == pytest.approx(expected_total, rel=1e-4)


def test_embedding_norm_puts_the_bank_on_a_sphere():
    model = tiny_model(embedding_norm=3.0)
    x, y = tiny_data()
    model.prepare_training(as_dataset(x, y))
    norms = np.linalg.norm(model.training_set.bank.embeddings.numpy(), axis=1)
    np.testing.assert_allclose(norms, 3.0, rtol=1e-5)
    assert RETDM.from_config(model.get_config()).embedding_norm == 3.0


def test_memory_bank_is_filled_then_refreshed():
    model = tiny_model()
    x, y = tiny_data()
    model.set_stage("joint")
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.prepare_training(as_dataset(x, y))
    bank = model.training_set.bank
    u = model.image_embedder(x["images"]).numpy()
    expected = model.embedding_norm * u / np.linalg.norm(u, axis=1, keepdims=True)
    np.testing.assert_allclose(bank.embeddings.numpy(), expected, rtol=1e-5, atol=1e-6)
    before = bank.embeddings.numpy().copy()
    model.fit(as_dataset(x, y), epochs=1, verbose=0)
    assert not np.allclose(before, bank.embeddings.numpy())
    assert bank.fraction_filled == 1.0


def test_exact_neighbour_images_train():
    model = tiny_model(neighbor_images="exact")
    x, y = tiny_data()
    model.compile(optimizer="sgd")
    history = model.fit(as_dataset(x, y), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["metric_loss"]))
    assert history.history["metric_loss"][0] > 0


def test_classifier_stage_logs_only_its_terms():
    model = tiny_model()
    x, y = tiny_data()
    model.set_stage("classifier")
    model.compile(optimizer="sgd")
    logs = model.fit(as_dataset(x, y), epochs=1, verbose=0).history
    assert sorted(logs) == ["cls_loss", "loss"]
    assert logs["loss"] == logs["cls_loss"]


def test_keras_round_trip_gives_identical_predictions(tmp_path):
    model = tiny_model(label_names=["a", "b", "c", "d"], thresholds=[0.4, 0.5, 0.6, 0.5])
    x, y = tiny_data()
    model.compile(optimizer="sgd")
    model.fit(as_dataset(x, y), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RETDM)
    np.testing.assert_array_equal(
        loaded.predict(x["images"], verbose=0), model.predict(x["images"], verbose=0)
    )
    assert loaded.get_config() == model.get_config()
    assert loaded.predict_labels(x["images"]) == model.predict_labels(x["images"])
    # the label branch is saved too
    np.testing.assert_array_equal(loaded.embed_labels(y).numpy(), model.embed_labels(y).numpy())


@pytest.mark.parametrize(
    ("stage", "lam_mu"), [("classifier", 1.0), ("metric", 1.0), ("joint", 0.0)]
)
def test_a_saved_stage_reloads_with_its_optimizer_state(tmp_path, stage, lam_mu):
    """What trains in the stage a model was saved in trains after loading, so the saved
    optimizer's slots (here SGD momentum) load in full, not skipped with a warning."""
    model = _trained_in_stage(stage, lam=lam_mu, mu=lam_mu)
    trained = [tuple(v.shape) for v in model.trainable_variables]
    path = tmp_path / "model.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it skips optimizer variables
        loaded = keras.models.load_model(path)
    assert loaded.stage == stage
    assert [tuple(v.shape) for v in loaded.trainable_variables] == trained
    _assert_same_optimizer_state(loaded.optimizer, model.optimizer)


def _trained_in_stage(stage, **kwargs):
    """A tiny model trained one epoch in ``stage`` with SGD momentum (optimizer slots)."""
    model = tiny_model(**kwargs)
    x, y = tiny_data()
    model.set_stage(stage)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(as_dataset(x, y), epochs=1, verbose=0)
    return model


def _assert_same_optimizer_state(restored, saved):
    assert len(restored.variables) == len(saved.variables) > 2  # momentum, not just step, rate
    for a, b in zip(restored.variables, saved.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _trained_weights_file(tmp_path, stage):
    model = _trained_in_stage(stage)
    path = tmp_path / "trained.weights.h5"
    model.save_weights(path)
    return model, path


def _load_into_fresh(path, stage):
    fresh = tiny_model()
    fresh.set_stage(stage)
    fresh.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it skips optimizer variables
        fresh.load_weights(path)
    return fresh


def test_load_weights_resumes_the_optimizer_of_the_same_stage(tmp_path):
    """A just-compiled model (optimizer not built yet) loads a ``.weights.h5`` file's
    optimizer slots when they belong to its stage, so ``fit`` resumes where it stopped."""
    model, path = _trained_weights_file(tmp_path, "joint")
    fresh = _load_into_fresh(path, "joint")
    _assert_same_optimizer_state(fresh.optimizer, model.optimizer)


def test_load_weights_from_another_stage_loads_the_weights_without_a_warning(tmp_path):
    """What KerasTuner's ``get_best_models`` does: a joint-stage checkpoint into a model built
    for the classifier stage. The weights load; the optimizer slots, which are for other
    variables, are left out quietly and the optimizer is fresh."""
    model, path = _trained_weights_file(tmp_path, "joint")
    fresh = _load_into_fresh(path, "classifier")
    for a, b in zip(fresh.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.optimizer.iterations.numpy()) == 0
    assert len(fresh.optimizer.variables) == 2 + len(fresh.trainable_variables)


def test_mlp_backbone_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    model = RETDM(3, backbone="mlp", input_dim=7, embed_dim=8, label_hidden_units=8)
    features = np.random.default_rng(0).normal(size=(5, 7)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(
        loaded.predict({"features": features}, verbose=0), model.predict(features, verbose=0)
    )


def test_predict_labels_uses_names_and_thresholds():
    model = tiny_model(label_names=["w", "x", "y", "z"])
    x, _ = tiny_data(n=3)
    p = model.predict(x["images"], verbose=0)
    got = model.predict_labels(x["images"], threshold=float(np.median(p)))
    names = np.array(["w", "x", "y", "z"])
    expected = [list(names[row >= np.median(p)]) for row in p]
    assert got == expected


def test_clear_errors():
    with pytest.raises(ValueError, match="backbone"):
        RETDM(3, backbone="alexnet")
    with pytest.raises(ValueError, match="label_names"):
        RETDM(3, backbone="tiny_cnn", image_size=SIZE, label_names=["a"])
    with pytest.raises(ValueError, match="thresholds"):
        RETDM(3, backbone="tiny_cnn", image_size=SIZE, thresholds=[0.5, 0.5])
    model = tiny_model()
    x, y = tiny_data()
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="sample index"):
        model.fit(x["images"], y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="num_labels"):
        model.prepare_training(x, y[:, :2])
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="sgd", loss="mse")


def test_freeze_batchnorm_survives_stage_changes():
    from retdm_keras.embedders import ImageEmbedder

    def bn_layers(embedder):
        return [
            layer
            for layer in embedder.backbone._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    frozen = ImageEmbedder("mobilenet", image_size=32, embed_dim=4, freeze_batchnorm=True)
    assert bn_layers(frozen) and not any(layer.trainable for layer in bn_layers(frozen))
    frozen.trainable = False
    frozen.trainable = True  # what set_stage("joint") does after the metric stage
    assert not any(layer.trainable for layer in bn_layers(frozen))
    assert frozen.backbone.get_layer("conv1").trainable
    free = ImageEmbedder("mobilenet", image_size=32, embed_dim=4)  # from scratch: BN trains
    assert all(layer.trainable for layer in bn_layers(free))
    # frozen BN statistics do not move during fit
    model = RETDM(2, backbone="mobilenet", image_size=32, embed_dim=4, freeze_batchnorm=True)
    model.set_stage("classifier")
    model.compile(optimizer="sgd")
    bn = bn_layers(model.image_embedder)[0]
    before = bn.moving_mean.numpy().copy()
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, np.eye(2, dtype="float32")[[0, 1, 0, 1]], epochs=1, verbose=0)
    np.testing.assert_array_equal(before, bn.moving_mean.numpy())
    assert RETDM.from_config(model.get_config()).image_embedder.freeze_batchnorm


def test_top_k_round_trip_and_predict_labels_picks_exactly_k(tmp_path):
    names = ["a", "b", "c", "d"]
    model = tiny_model(label_names=names, top_k=2)
    assert model.top_k == 2 and model.get_config()["top_k"] == 2
    x, _ = tiny_data(n=5)
    path = tmp_path / "top_k.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.top_k == 2 and loaded.get_config() == model.get_config()
    p = loaded.predict(x["images"], verbose=0)
    got = loaded.predict_labels(x["images"])
    assert got == model.predict_labels(x["images"])
    for row, labels in zip(p, got, strict=True):
        assert len(labels) == 2
        chosen = [names.index(n) for n in labels]
        others = [j for j in range(NUM_LABELS) if j not in chosen]
        assert min(row[chosen]) >= max(row[others])
    # an explicit threshold still thresholds
    assert loaded.predict_labels(x["images"], threshold=0.0) == [names] * 5
    assert RETDM.from_config({**model.get_config(), "top_k": None}).top_k is None


@pytest.mark.parametrize("top_k", [0, 5, 1.5, True])
def test_top_k_out_of_range_is_a_clear_error(top_k):
    with pytest.raises(ValueError, match="top_k"):
        RETDM(NUM_LABELS, backbone="tiny_cnn", image_size=SIZE, embed_dim=8, top_k=top_k)


def test_weights_without_label_sets_warn_at_the_first_prediction(tmp_path):
    """Label sets are configuration: a model given a trained model's weights alone predicts
    with the classifier only, and says so once; with the label sets set it predicts as the
    trained model does, silently."""
    model = tiny_model(lam=1.0, mu=1.0)
    x, y = tiny_data()
    fit_stages(model, as_dataset(x, y), epochs=(1, 1, 1), verbose=0)
    assert model.label_sets
    path = tmp_path / "trained.weights.h5"
    model.save_weights(path)
    expected = model.predict(x["images"], verbose=0)

    bare = tiny_model(lam=1.0, mu=1.0)
    bare.load_weights(path)
    with pytest.warns(UserWarning, match="without its training label sets"):
        alone = bare.predict(x["images"], verbose=0)
    assert not np.allclose(alone, expected, atol=1e-4)  # the retrieval mix is missing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bare.predict(x["images"], verbose=0)  # warned once

    informed = tiny_model(lam=1.0, mu=1.0)
    informed.load_weights(path)
    informed.label_sets = model.label_sets
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(informed.predict(x["images"], verbose=0), expected, atol=1e-6)

    # a model made from a config (a .keras file, a zoo entry) has the label sets its config
    # records, here none: loading weights into it is not a reason to warn
    from_config = RETDM.from_config(tiny_model(lam=1.0, mu=1.0).get_config())
    assert from_config.label_sets is None
    from_config.load_weights(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_config.predict(x["images"], verbose=0)
