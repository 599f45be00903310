"""The tuned baseline inside RETDM: ``BaselineHead``, ``RETDM.set_baseline``, the choice of
its share on validation data (``fit_baseline_blend``, ``fit_stages(baseline=...)``), saving,
exporting and the CLI's defaults around it. References: numpy and scikit-learn."""

from __future__ import annotations

import json

import keras
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score

from retdm_keras import RETDM, fit_stages
from retdm_keras.baseline_blend import (
    BASELINE_TOL,
    BLEND_WEIGHTS,
    baseline_features,
    baseline_scaling,
    fit_baseline_blend,
)
from retdm_keras.baselines import BinaryRelevanceLR
from retdm_keras.export import export_model
from retdm_keras.heads import BaselineHead


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def feature_model(num_labels=4, input_dim=10, **kwargs):
    keras.utils.set_random_seed(0)
    return RETDM(num_labels, backbone="mlp", input_dim=input_dim, embed_dim=8,
                 label_hidden_units=8, **kwargs)  # fmt: skip


def synthetic(n=300, f=10, c=4, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype("float32")
    w = rng.normal(size=(f, c))
    y = (x @ w + noise * rng.normal(size=(n, c)) > 0).astype("float32")
    return x, y


def random_lr(f, c, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(f, c)), rng.normal(size=c), rng.normal(size=f), rng.random(f) + 0.5


def features_ds(x, y, index=True, batch=32):
    inputs = {"features": x, **({"index": np.arange(len(x))} if index else {})}
    return tf.data.Dataset.from_tensor_slices((inputs, y)).batch(batch)


# --------------------------------------------------------------------------- the head
def test_baseline_head_folds_the_scaling_into_its_weights():
    coef, intercept, mean, scale = random_lr(5, 3)
    head = BaselineHead(3)
    head.build((None, 5))
    head.assign(coef, intercept, mean, scale)
    x = np.random.default_rng(2).normal(size=(7, 5)).astype("float32")
    expected = sigmoid(((x - mean) / scale) @ coef + intercept)
    np.testing.assert_allclose(head(x).numpy(), expected, rtol=0, atol=1e-5)
    assert not head.trainable_weights  # fitted in closed form, never by fit
    model = feature_model(baseline_weight=0.5)
    assert not [w for w in model.trainable_weights if "baseline" in w.path]


# --------------------------------------------------------------------------- set_baseline
def test_set_baseline_mixes_the_logistic_regression_into_predict_and_evaluate(tmp_path):
    model = feature_model()
    x, y = synthetic(40)
    alone = model.predict(x, verbose=0)
    coef, intercept, mean, scale = random_lr(10, 4)
    model.set_baseline(0.3, coef, intercept, mean, scale)
    expected = 0.7 * alone + 0.3 * sigmoid(((x - mean) / scale) @ coef + intercept)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=1e-5)
    # evaluate scores what predict returns
    model.compile(metrics=[keras.metrics.BinaryCrossentropy(name="bce")])
    got = model.evaluate(features_ds(x, y, index=False), verbose=0, return_dict=True)["bce"]
    reference = keras.metrics.BinaryCrossentropy()(y, expected).numpy()
    assert got == pytest.approx(float(reference), rel=1e-4)
    # a saved file keeps the head and its share
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    assert loaded.baseline_weight == 0.3
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=0, atol=1e-5)


def test_a_zero_share_predicts_retdm_alone_and_keeps_the_head_through_saving(tmp_path):
    model = feature_model()
    x, _ = synthetic(20)
    alone = model.predict(x, verbose=0)
    model.set_baseline(0.5, *random_lr(10, 4))
    assert np.abs(model.predict(x, verbose=0) - alone).max() > 1e-3
    model.set_baseline(0.0)
    np.testing.assert_allclose(model.predict(x, verbose=0), alone, rtol=0, atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.baseline_head is not None and loaded.baseline_weight == 0.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), alone, rtol=0, atol=1e-6)
    loaded.set_baseline(0.5)  # the kept head comes back without new coefficients
    assert np.abs(loaded.predict(x, verbose=0) - alone).max() > 1e-3


def test_set_baseline_checks_its_arguments():
    model = feature_model()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.set_baseline(1.5, *random_lr(10, 4))
    with pytest.raises(ValueError, match="coef must have shape"):
        model.set_baseline(0.5, *random_lr(9, 4))
    with pytest.raises(ValueError, match="needs coef and intercept"):
        model.set_baseline(0.5)
    with pytest.raises(ValueError, match="baseline_weight"):
        RETDM(3, backbone="mlp", input_dim=4, baseline_weight=-0.1)


def test_image_model_baseline_reads_pooled_backbone_features():
    keras.utils.set_random_seed(0)
    model = RETDM(3, backbone="tiny_cnn", image_size=24, embed_dim=8, label_hidden_units=8)
    images = np.random.default_rng(0).uniform(0, 255, (5, 24, 24, 3)).astype("float32")
    alone = model.predict(images, verbose=0)
    pooled = np.asarray(model.backbone_features(images))
    coef, intercept, mean, scale = random_lr(model.baseline_input_dim, 3)
    model.set_baseline(0.6, coef, intercept, mean, scale)
    expected = 0.4 * alone + 0.6 * sigmoid(((pooled - mean) / scale) @ coef + intercept)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=0, atol=1e-5)
    # the backbone-features input (frozen training, the fast runtime) gives the same
    got = model.predict({"backbone_features": pooled}, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backbone", ["mlp", "tiny_cnn"])
def test_export_keeps_the_baseline(tmp_path, backbone):
    if backbone == "mlp":
        model = feature_model()
        x = np.random.default_rng(3).normal(size=(6, 10)).astype("float32")
    else:
        keras.utils.set_random_seed(0)
        model = RETDM(4, backbone="tiny_cnn", image_size=24, embed_dim=8, label_hidden_units=8)
        x = np.random.default_rng(3).uniform(0, 255, (6, 24, 24, 3)).astype("float32")
    model.set_baseline(0.5, *random_lr(model.baseline_input_dim, 4))
    path = export_model(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- the choice
def reference_scores(y, p):
    """AP (label ranking) and mAP (labels with a positive) by scikit-learn."""
    ap = label_ranking_average_precision_score(y[y.sum(1) > 0], p[y.sum(1) > 0])
    per_label = [average_precision_score(y[:, j], p[:, j]) for j in range(y.shape[1])
                 if y[:, j].any()]  # fmt: skip
    return ap, float(np.mean(per_label))


def test_fit_baseline_blend_chooses_the_share_that_scores_best_on_validation():
    x, y = synthetic(400, seed=4)
    model = feature_model()  # untrained: a poor RETDM, the baseline should take over
    p_retdm = model.predict(x[300:], verbose=0)
    blend = fit_baseline_blend(model, x[:300], y[:300], x[300:], y[300:], verbose=0)
    lr = BinaryRelevanceLR(scaling="standard", refit=False, tol=BASELINE_TOL)
    lr.fit(x[:300], y[:300], x[300:], y[300:])
    assert blend.C == lr.C_ and blend.scaling == "standard"
    p_lr = lr.predict_proba(x[300:])
    totals = {}
    for w in BLEND_WEIGHTS:
        ap, m_ap = reference_scores(y[300:], (1 - w) * p_retdm + w * p_lr)
        assert blend.validation[w]["average_precision"] == pytest.approx(ap, abs=1e-9)
        assert blend.validation[w]["mAP"] == pytest.approx(m_ap, abs=1e-9)
        totals[w] = ap + m_ap
    assert blend.weight == max(totals, key=lambda w: (totals[w], -w))
    assert blend.weight >= 0.5 and model.baseline_weight == blend.weight
    # the stored baseline is refit with the chosen C on training + validation rows
    final = BinaryRelevanceLR([blend.C], tol=BASELINE_TOL).fit(x, y)
    model.set_baseline(0.0)
    alone = model.predict(x[:50], verbose=0)
    model.set_baseline(blend.weight)
    expected = (1 - blend.weight) * alone + blend.weight * final.predict_proba(x[:50])
    np.testing.assert_allclose(model.predict(x[:50], verbose=0), expected, atol=1e-4)
    assert blend.refit_rows == 400 and blend.chosen in ("mix", "baseline")


def test_a_perfect_retdm_keeps_the_share_at_zero():
    x, y = synthetic(200, seed=5, noise=3.0)  # a noisy problem the baseline cannot solve
    model = feature_model()
    perfect = y[150:] * 0.9 + 0.05
    blend = fit_baseline_blend(model, x[:150], y[:150], x[150:], y[150:],
                               retdm_val_probabilities=perfect, verbose=0)  # fmt: skip
    assert blend.weight == 0.0 and blend.chosen == "RETDM"
    assert model.baseline_head is None and model.baseline_weight == 0.0
    assert "RETDM alone" in blend.summary()


def test_sparse_features_are_scaled_by_max_abs():
    dense = np.random.default_rng(0).normal(size=(50, 6))
    sparse = (np.random.default_rng(0).random((50, 6)) > 0.8).astype("float32")
    assert baseline_scaling(dense) == "standard" and baseline_scaling(sparse) == "maxabs"


def test_baseline_features_of_images_are_the_pooled_backbone_features():
    keras.utils.set_random_seed(0)
    model = RETDM(3, backbone="tiny_cnn", image_size=24, embed_dim=8, label_hidden_units=8)
    images = np.random.default_rng(0).uniform(0, 255, (10, 24, 24, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[np.arange(10) % 3]
    ds = tf.data.Dataset.from_tensor_slices(({"images": images}, labels)).batch(4)
    features, got_labels = baseline_features(model, ds)
    np.testing.assert_allclose(features, np.asarray(model.backbone_features(images)), atol=1e-5)
    np.testing.assert_array_equal(got_labels, labels)
    pooled = np.asarray(model.backbone_features(images[:2]))  # already pooled: as they are
    np.testing.assert_array_equal(model.baseline_inputs({"backbone_features": pooled}), pooled)
    x, _ = synthetic(5)
    np.testing.assert_array_equal(feature_model().baseline_inputs({"features": x}), x)


# --------------------------------------------------------------------------- fit_stages
def test_fit_stages_mixes_the_baseline_in_when_it_has_validation_data(capsys):
    x, y = synthetic(300, seed=6)
    model = feature_model()
    fit_stages(model, features_ds(x[:220], y[:220]), features_ds(x[220:], y[220:], False),
               epochs=(1, 1, 1), verbose=1)  # fmt: skip
    choice = model.baseline_choice
    assert choice is not None and choice.val_rows == 80 and choice.train_rows == 220
    assert model.baseline_weight == choice.weight
    assert "tuned logistic regression" in capsys.readouterr().out

    without_val = feature_model()
    fit_stages(without_val, features_ds(x, y), epochs=(1, 0, 0), verbose=0)
    assert without_val.baseline_choice is None and without_val.baseline_head is None
    off = feature_model()
    fit_stages(off, features_ds(x[:220], y[:220]), features_ds(x[220:], y[220:], False),
               epochs=(1, 0, 0), verbose=0, baseline=False)  # fmt: skip
    assert off.baseline_choice is None
    with pytest.raises(ValueError, match="val_data"):
        fit_stages(feature_model(), features_ds(x, y), epochs=(1, 0, 0), baseline=True)


def test_a_baseline_that_cannot_be_fit_warns_and_keeps_the_trained_model():
    x, y = synthetic(200, seed=8)
    model = feature_model()
    no_positive = np.zeros_like(y[150:])  # nothing to rank on the validation rows
    with pytest.warns(RuntimeWarning, match="not mixed in"):
        val = features_ds(x[150:], no_positive, False)
        fit_stages(model, features_ds(x[:150], y[:150]), val, epochs=(1, 0, 0), verbose=0)
    assert model.baseline_choice is None and model.baseline_weight == 0.0
    assert model.predict(x[:4], verbose=0).shape == (4, 4)


def test_training_again_drops_a_stale_baseline():
    x, y = synthetic(200, seed=9)
    model = feature_model()
    model.set_baseline(0.7, *random_lr(10, 4))
    fit_stages(model, features_ds(x, y), epochs=(1, 0, 0), verbose=0)  # no val: no new mix
    assert model.baseline_weight == 0.0 and model.baseline_choice is None


def test_the_baseline_head_computes_in_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = feature_model()
        x, _ = synthetic(8)
        coef, intercept, mean, scale = random_lr(10, 4)
        # features far from 0: the mean folded into the bias needs float32 to cancel
        coef = 0.01 * coef
        model.set_baseline(1.0, coef, intercept, mean + 100.0, scale)
        assert model.baseline_head.dense.compute_dtype == "float32"
        expected = sigmoid(((x - mean) / scale) @ coef + intercept)
        got = model.baseline_head(x + 100.0).numpy()  # (Keras casts a model's own inputs)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    finally:
        keras.config.set_dtype_policy(previous)


# --------------------------------------------------------------------------- the CLI
def write_arff(path, x, y):
    lines = ["@relation toy"]
    lines += [f"@attribute f{i} numeric" for i in range(x.shape[1])]
    lines += [f"@attribute l{j} {{0,1}}" for j in range(y.shape[1])]
    lines.append("@data")
    for row, labels in zip(x, y.astype(int), strict=True):
        lines.append(",".join([*(f"{v:.5f}" for v in row), *map(str, labels)]))
    path.write_text("\n".join(lines) + "\n")


def test_cli_holds_out_validation_rows_for_the_choice_and_records_it(tmp_path, capsys):
    from retdm_keras.cli import main

    x, y = synthetic(150, f=6, c=3, seed=7)
    write_arff(tmp_path / "train.arff", x, y)
    common = ["train", "--arff-train", str(tmp_path / "train.arff"), "--num-labels", "3",
              "--epochs", "1", "1", "1", "--embed-dim", "8", "--verbose", "0"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "on")]) == 0
    assert "holding out 20%" in capsys.readouterr().out
    config = json.loads((tmp_path / "on" / "train_config.json").read_text())
    assert config["sizes"] == {"train": 120, "val": 30}
    assert config["baseline_choice"]["val_rows"] == 30
    assert config["baseline_choice"]["weight"] in BLEND_WEIGHTS
    saved = keras.models.load_model(tmp_path / "on" / "model.keras")
    assert saved.baseline_weight == config["baseline_choice"]["weight"]

    assert main([*common, "--no-baseline", "--out", str(tmp_path / "off")]) == 0
    config = json.loads((tmp_path / "off" / "train_config.json").read_text())
    assert config["sizes"] == {"train": 150} and "baseline_choice" not in config


def test_cli_retrains_retdm_on_all_rows_once_the_held_out_rows_have_chosen(tmp_path, capsys):
    """The final RETDM learns from every row (like a --no-baseline run of the same seed);
    the share and the baseline stay those the held-out rows chose (like a --no-refit run)."""
    from retdm_keras.cli import main

    x, y = synthetic(150, f=6, c=3, seed=3)
    write_arff(tmp_path / "train.arff", x, y)
    common = ["train", "--arff-train", str(tmp_path / "train.arff"), "--num-labels", "3",
              "--epochs", "2", "0", "0", "--embed-dim", "8", "--verbose", "0"]  # fmt: skip
    runs = {
        "refit": [],
        "first": ["--no-refit"],
        "all": ["--no-baseline"],
        "asked": ["--val-fraction", "0.2"],  # rows cut on request go back in too
    }
    models, choices, rates = {}, {}, {}
    for run, extra in runs.items():
        assert main([*common, *extra, "--out", str(tmp_path / run)]) == 0
        log = capsys.readouterr().out
        retrained = "retraining RETDM on all 150 training rows" in log
        assert retrained == (run in ("refit", "asked")), log
        config = json.loads((tmp_path / run / "train_config.json").read_text())
        choices[run] = config.get("baseline_choice")
        models[run] = keras.models.load_model(tmp_path / run / "model.keras", compile=False)
        history = json.loads((tmp_path / run / "history.json").read_text())
        rates[run] = [row["learning_rate"] for row in history["classifier"]]
    # the final RETDM replays the learning rates the first run's validation rows chose
    assert rates["refit"] == rates["first"]
    refit, first = choices["refit"], choices["first"]
    assert 0.0 < refit["weight"] < 1.0, "the data should call for a mix"
    assert refit["retdm_rows"] == 150 and first["retdm_rows"] == 120
    assert {k: v for k, v in refit.items() if k != "retdm_rows"} == {
        k: v for k, v in first.items() if k != "retdm_rows"
    }
    for got, expected in zip(
        models["refit"].baseline_head.get_weights(),
        models["first"].baseline_head.get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)
    # RETDM's own part is the --no-baseline model: same seed, same rows, and (2 epochs: no
    # plateau yet) the same learning rates
    mixed = models["refit"].predict({"features": x}, verbose=0)
    models["refit"].set_baseline(0.0)
    alone = models["all"].predict({"features": x}, verbose=0)
    np.testing.assert_allclose(models["refit"].predict({"features": x}, verbose=0), alone,
                               atol=1e-6)  # fmt: skip
    baseline = models["first"].baseline_head(x).numpy()
    weight = refit["weight"]
    np.testing.assert_allclose(mixed, (1 - weight) * alone + weight * baseline, atol=1e-5)
