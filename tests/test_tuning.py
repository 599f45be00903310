"""KerasTuner over RETDM: trials run the stages, report the objective, and the best is found."""

import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from retdm_keras import RETDM, fit_stages
from retdm_keras.metrics import MeanAveragePrecision
from retdm_keras.tuning import RETDMHyperModel, best_recipe, heatmap, retdm_objective

SIZE = 16
NUM_LABELS = 3
MODEL_KWARGS = dict(backbone="tiny_cnn", image_size=SIZE, embed_dim=8, label_hidden_units=8)


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, NUM_LABELS)) < 0.4).astype("float32")
    y[np.arange(n), np.arange(n) % NUM_LABELS] = 1.0
    images = rng.uniform(0, 80, (n, SIZE, SIZE, 3)).astype("float32") + 150 * y[:, None, None, :]
    return images, y


@pytest.fixture(scope="module")
def data():
    images, y = synthetic(24, seed=0)
    train = tf.data.Dataset.from_tensor_slices(
        ({"images": images, "index": np.arange(len(y))}, y)
    ).batch(12)
    val_images, val_y = synthetic(12, seed=1)
    val = tf.data.Dataset.from_tensor_slices((val_images, val_y)).batch(12)
    return train, val


def hypermodel(data, **kwargs):
    train, val = data
    defaults = dict(train_data=train, val_data=val, model_kwargs=MODEL_KWARGS, epochs=(1, 1, 1))
    return RETDMHyperModel(NUM_LABELS, **{**defaults, **kwargs})


def completed(tuner):
    trials = list(tuner.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials), [t.message for t in trials]
    return trials


@pytest.fixture(scope="module")
def random_search(data, tmp_path_factory):
    keras.utils.set_random_seed(0)
    tuner = kt.RandomSearch(
        hypermodel(data),
        objective=retdm_objective("val_mAP"),
        max_trials=2,
        seed=3,
        directory=tmp_path_factory.mktemp("tuner"),
        project_name="random",
        overwrite=True,
    )
    tuner.search(verbose=0)
    return tuner


def test_random_search_trials_differ_and_the_best_is_reported(random_search):
    trials = completed(random_search)
    assert len(trials) == 2
    lams = {t.hyperparameters.get("lam") for t in trials}
    mus = {t.hyperparameters.get("mu") for t in trials}
    assert len(lams) == 2 and len(mus) == 2
    assert all(1e-2 <= lam <= 10 for lam in lams)
    # the metric-loss term is weighted by lam: the trials' validation losses differ
    losses = {t.metrics.get_last_value("val_loss") for t in trials}
    assert len(losses) == 2
    best_trial = max(trials, key=lambda t: t.score)
    best_hp = random_search.get_best_hyperparameters()[0]
    assert best_hp.values == best_trial.hyperparameters.values
    recipe = best_recipe(random_search)
    assert recipe["hyperparameters"] == {"lam": best_hp["lam"], "mu": best_hp["mu"]}
    assert recipe["score"] == best_trial.score and recipe["objective"] == "val_mAP"
    assert recipe["model_kwargs"] == {**MODEL_KWARGS, "lam": best_hp["lam"], "mu": best_hp["mu"]}
    assert recipe["epochs"] == [1, 1, 1] and len(recipe["learning_rates"]) == 3


def test_trial_metrics_include_every_evaluate_metric(random_search):
    (trial,) = random_search.oracle.get_best_trials(1)
    for name in ("val_mAP", "val_O-F1", "val_C-F1", "val_one_error", "val_coverage"):
        assert trial.metrics.exists(name), name


def test_best_model_loads(random_search):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (model,) = random_search.get_best_models(1)
    # the trial checkpoint's optimizer slots are the joint stage's: left out, not warned about
    assert not [w for w in caught if "optimizer" in str(w.message)], caught
    assert isinstance(model, RETDM)
    assert model.predict(np.zeros((2, SIZE, SIZE, 3), "float32"), verbose=0).shape == (2, 3)


def test_best_model_scores_what_its_trial_reported(random_search):
    """``get_best_models`` reloads weights only; the model must still predict as the trained
    one did, label-set retrieval included (the label sets are not weights), and the trial's
    objective must have scored those predictions, not the classifier's alone."""
    (model,) = random_search.get_best_models(1)
    (trial,) = random_search.oracle.get_best_trials(1)
    val_images, val_y = synthetic(12, seed=1)
    _, train_y = synthetic(24, seed=0)
    assert sorted(map(tuple, model.label_sets)) == sorted(
        {tuple(np.flatnonzero(row).tolist()) for row in train_y}
    )
    streaming = MeanAveragePrecision(NUM_LABELS)  # what val_mAP, the objective, is
    streaming.update_state(val_y, model.predict(val_images, verbose=0))
    assert float(streaming.result()) == pytest.approx(trial.score, abs=1e-6)


def test_heatmap_writes_a_png(random_search, tmp_path):
    path = heatmap(random_search, tmp_path / "plots" / "lam_mu.png")
    content = path.read_bytes()
    assert content.startswith(b"\x89PNG") and len(content) > 1000


def test_bayesian_optimization_runs_with_a_minimised_objective(data, tmp_path):
    tuner = kt.BayesianOptimization(
        hypermodel(data, search_alpha=[0.0, 1.0], search_margin=True),
        objective=retdm_objective("val_one_error"),
        max_trials=1,
        num_initial_points=1,
        directory=tmp_path,
        overwrite=True,
    )
    assert tuner.oracle.objective.direction == "min"
    tuner.search(verbose=0)
    (trial,) = completed(tuner)
    assert trial.score == trial.metrics.get_last_value("val_one_error")
    assert set(trial.hyperparameters.values) == {"lam", "mu", "alpha", "margin"}


def test_hyperband_continues_trials_in_the_joint_stage(data, tmp_path):
    tuner = kt.Hyperband(
        hypermodel(data),
        objective=retdm_objective(),
        max_epochs=2,
        factor=2,
        seed=0,
        directory=tmp_path,
        overwrite=True,
    )
    tuner.oracle.max_trials = 3  # the first bracket: two 1-epoch trials, then one continued
    tuner.search(verbose=0)
    trials = completed(tuner)
    assert len(trials) == 3
    assert any("tuner/trial_id" in t.hyperparameters.values for t in trials)


def test_hyperband_budget_goes_to_the_joint_stage(data):
    model_hp = kt.HyperParameters()
    hm = hypermodel(data, epochs=(1, 0, 1), full_metrics=False)
    model = hm.build(model_hp)
    history = hm.fit(model_hp, model, epochs=2, initial_epoch=0, verbose=0)
    assert history.epoch == [1, 2]  # stages (1, 0, 2): the joint stage is epochs 1 and 2
    model_hp.Fixed("tuner/trial_id", "0")  # a continued trial: only the joint stage runs
    history = hm.fit(model_hp, model, epochs=2, initial_epoch=1, verbose=0)
    assert history.epoch == [0] and model.stage == "joint"


def test_stage1_weights_skip_the_classifier_stage(data, tmp_path):
    train, val = data
    keras.utils.set_random_seed(1)
    stage1 = RETDM(NUM_LABELS, **MODEL_KWARGS)
    fit_stages(stage1, train, val, epochs=(1, 0, 0), verbose=0)
    path = tmp_path / "stage1.weights.h5"
    stage1.save_weights(path)

    hm = hypermodel(data, stage1_weights=path)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    assert model.stage == "metric"
    for a, b in zip(model.image_embedder.weights, stage1.image_embedder.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    history = hm.fit(hp, model, verbose=0)
    assert history.epoch == [1]  # metric stage = epoch 0, joint stage = epoch 1

    tuner = kt.RandomSearch(hm, objective=retdm_objective(), max_trials=1, directory=tmp_path)
    tuner.search(verbose=0)
    (trial,) = completed(tuner)
    assert trial.score is not None


def test_objective_directions():
    assert retdm_objective().direction == "max"
    assert retdm_objective("val_C-F1").direction == "max"
    for name in ("val_loss", "val_hamming_loss", "ranking_loss", "val_one_error", "val_coverage"):
        assert retdm_objective(name).direction == "min", name


def test_clear_errors(data, tmp_path):
    with pytest.raises(ValueError, match="embed_dim"):
        hypermodel(data, stage1_weights=tmp_path / "w.weights.h5", search_embed_dim=[4, 8])
    with pytest.raises(ValueError, match="lam_range"):
        hypermodel(data, lam_range=(0.0, 1.0))
    tuner = kt.RandomSearch(
        hypermodel(data), objective=retdm_objective(), max_trials=1, directory=tmp_path
    )
    with pytest.raises(ValueError, match="no completed trial"):
        best_recipe(tuner)


def test_frozen_backbone_trials_keep_the_backbone_and_train_the_rest(data, tmp_path):
    hm = hypermodel(data, freeze_backbone=True, feature_views=2, feature_cache=tmp_path)
    hp = kt.HyperParameters()
    keras.utils.set_random_seed(0)
    model = hm.build(hp)
    backbone = [w.numpy().copy() for w in model.image_embedder.backbone.weights]
    head = [w.numpy().copy() for w in model.classification_head.weights]
    history = hm.fit(hp, model, verbose=0)
    assert history.epoch == [2]  # classifier 0, metric 1, joint 2 (the scored stage)
    assert "val_mAP" in history.history
    for before, after in zip(backbone, model.image_embedder.backbone.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # bit-identical
    assert any(
        not np.array_equal(b, a.numpy())
        for b, a in zip(head, model.classification_head.weights, strict=True)
    )
    with pytest.raises(ValueError, match="image backbone"):
        hypermodel(data, freeze_backbone=True, model_kwargs={"backbone": "mlp", "input_dim": 4})


def test_linear_skip_is_searched_for_feature_vectors_only(data):
    """``search_linear_skip`` declares a True/False choice that reaches the built model's
    embedder; image backbones, which have no linear path, refuse it."""
    x = np.random.default_rng(0).normal(size=(12, 5)).astype("float32")
    y = synthetic(12, seed=0)[1]
    features = tf.data.Dataset.from_tensor_slices(
        ({"features": x, "index": np.arange(len(y))}, y)
    ).batch(6)
    feature_kwargs = dict(backbone="mlp", input_dim=5, embed_dim=8, label_hidden_units=8)
    hm = RETDMHyperModel(NUM_LABELS, train_data=features, model_kwargs=feature_kwargs,
                         search_linear_skip=True)  # fmt: skip
    hp = kt.HyperParameters()
    hm.declare_hyperparameters(hp)
    assert hp.values["linear_skip"] is True
    assert hp.get_config()["space"][-1]["class_name"] == "Boolean"
    for value in (True, False):
        hp.values["linear_skip"] = value
        assert hm.build(hp).image_embedder.linear_skip is value
    with pytest.raises(ValueError, match="search_linear_skip needs feature vectors"):
        hypermodel(data, search_linear_skip=True)
