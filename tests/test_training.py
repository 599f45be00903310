"""fit_stages on synthetic data, and a short real run on MIML scene images."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import private_keras_home

import retdm_keras
from retdm_keras import RETDM, evaluate, fit_stages
from retdm_keras.training import default_optimizer


def synthetic(n=32, size=16, labels=3, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.4).astype("float32")
    y[np.arange(n), np.arange(n) % labels] = 1.0
    # each label brightens one colour channel, so the task is learnable
    images = rng.uniform(0, 80, (n, size, size, 3)).astype("float32")
    images += 150 * y[:, None, None, :3]
    x = {"images": images, "index": np.arange(n)}
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8), images, y


def test_fit_stages_runs_each_stage_with_its_losses():
    train, images, y = synthetic()
    keras.utils.set_random_seed(0)
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8, label_hidden_units=16)
    histories = fit_stages(model, train, train, epochs=(2, 1, 2), verbose=0)
    assert list(histories) == ["classifier", "metric", "joint"]
    assert len(histories["classifier"].history["loss"]) == 2
    assert "metric_loss" not in histories["classifier"].history
    metric_logs = histories["metric"].history
    # stage 2 optimises lam*metric + mu*rec only
    np.testing.assert_allclose(
        metric_logs["loss"][0],
        model.lam * metric_logs["metric_loss"][0] + model.mu * metric_logs["rec_loss"][0],
        rtol=1e-4,
    )
    joint = histories["joint"].history
    for key in ("loss", "cls_loss", "metric_loss", "rec_loss", "mAP", "O-F1", "val_mAP"):
        assert key in joint and np.all(np.isfinite(joint[key])), key
    # the epochs continue across stages
    assert histories["joint"].epoch == [3, 4]
    assert model.stage == "joint"


def test_zero_epochs_skip_a_stage_and_bce_only_is_stage_one():
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    histories = fit_stages(model, train, epochs=(1, 0, 0), verbose=0)
    assert list(histories) == ["classifier"]
    assert model.training_set is None  # no neighbour index needed for BCE only


def test_default_optimizer_is_the_papers():
    opt = default_optimizer(0.05)
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.momentum == pytest.approx(0.9)
    assert opt.weight_decay == pytest.approx(1e-4)
    assert float(opt.learning_rate) == pytest.approx(0.05)


def test_adam_decays_kernels_but_not_biases():
    """Decoupled decay with Adam: a zero gradient leaves Adam's own step at 0, so a kernel
    shrinks by exactly ``1 - lr * wd`` and a bias (a label's prior, in the head) not at all."""
    from retdm_keras.optimizer_defaults import default_weight_decay
    from retdm_keras.training import make_optimizer

    assert default_weight_decay("adam", "mlp") == default_weight_decay("adamw", "mlp") == 3.0
    assert default_weight_decay("sgd", "mlp") == pytest.approx(1e-4)
    assert default_weight_decay("adam", "mobilenet_v2") == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        default_weight_decay("rmsprop", "mlp")
    layer = keras.layers.Dense(3, bias_initializer="ones")
    layer.build((None, 4))
    kernel = np.asarray(layer.kernel).copy()
    for name in ("adam", "adamw"):
        optimizer = make_optimizer(name, 1e-2, weight_decay=3.0)
        before = np.asarray(layer.kernel).copy()
        optimizer.apply_gradients(
            [(np.zeros((4, 3), "float32"), layer.kernel), (np.zeros(3, "float32"), layer.bias)]
        )
        np.testing.assert_allclose(np.asarray(layer.kernel), before * (1 - 1e-2 * 3.0), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(layer.bias), np.ones(3, "float32"))
    assert not np.allclose(np.asarray(layer.kernel), kernel)


def test_the_default_optimizer_follows_the_input():
    """Images: the paper's SGD at 0.01 / 0.01 / 0.001; feature vectors ("mlp"): Adam with
    weight decay 3 at 3e-4 / 3e-4 / 3e-5; an explicit optimiser and rates win."""
    from retdm_keras.data import feature_dataset

    train, _, y = synthetic()
    keras.utils.set_random_seed(0)
    image_model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    fit_stages(image_model, train, epochs=(1, 0, 0), verbose=0)
    assert type(image_model.optimizer) is keras.optimizers.SGD
    assert float(image_model.optimizer.learning_rate) == pytest.approx(0.01)

    x = np.random.default_rng(0).normal(size=(len(y), 5)).astype("float32")
    features = feature_dataset(x, y, batch_size=8)
    model = RETDM(3, backbone="mlp", input_dim=5, embed_dim=8, label_hidden_units=8)
    fit_stages(model, features, epochs=(1, 0, 0), verbose=0)
    assert type(model.optimizer) is keras.optimizers.Adam
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-4)
    assert model.optimizer.weight_decay == pytest.approx(3.0)
    fit_stages(model, features, epochs=(0, 0, 1), verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-5)  # the joint stage's

    fit_stages(
        model,
        features,
        epochs=(1, 0, 0),
        learning_rates=(0.05, 0.01, 0.001),
        optimizer=lambda stage, lr: default_optimizer(lr),
        verbose=0,
    )
    assert type(model.optimizer) is keras.optimizers.SGD
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)


def test_learning_rate_drops_on_plateau():
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    # a zero learning rate can never improve the loss: every epoch is a plateau
    histories = fit_stages(
        model,
        train,
        epochs=(4, 0, 0),
        learning_rates=(1e-30, 0.0, 0.0),
        reduce_lr_patience=1,
        verbose=0,
    )
    rates = histories["classifier"].history["learning_rate"]
    assert rates[-1] < rates[0]


def test_a_learning_rate_schedule_is_replayed_epoch_by_epoch():
    """What a run with validation data chose is what a retraining on all rows gets: the rates
    given per stage, across the stages' shared epoch numbering, and no plateau drops."""
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    schedule = {"metric": [3e-3, 3e-4], "joint": [1e-3, 1e-4, 1e-5]}
    histories = fit_stages(
        model,
        train,
        epochs=(3, 2, 3),
        learning_rates=(1e-30, 1e-2, 1e-2),  # stage 1: every epoch a plateau, patience 1
        learning_rate_schedule=schedule,
        reduce_lr_patience=1,
        verbose=0,
    )
    used = retdm_keras.learning_rates_used(histories)
    assert set(used) == {"classifier", "metric", "joint"}
    assert used["classifier"][-1] < used["classifier"][0]  # not replayed: plateau drops
    for stage, rates in schedule.items():
        np.testing.assert_allclose(used[stage], rates, rtol=1e-6)
    # replaying what was used reproduces it, the plateau stage included
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    again = fit_stages(
        model, train, epochs=(3, 2, 3), learning_rates=(1e-30, 1e-2, 1e-2),
        learning_rate_schedule=used, reduce_lr_patience=100, verbose=0,
    )  # fmt: skip
    for stage, rates in retdm_keras.learning_rates_used(again).items():
        np.testing.assert_allclose(rates, used[stage], rtol=1e-6)


@pytest.mark.parametrize(
    "schedule, message",
    [
        ({"warmup": [1e-3]}, "unknown stage"),
        ({"classifier": [1e-3]}, "has 1 rates for 2 epochs"),
        ({"classifier": [1e-3, 0.0]}, "must be > 0"),
    ],
)
def test_a_bad_learning_rate_schedule_is_an_error(schedule, message):
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    with pytest.raises(ValueError, match=message):
        fit_stages(model, train, epochs=(2, 0, 0), learning_rate_schedule=schedule)


def test_a_bad_schedule_fails_before_the_frozen_extraction(monkeypatch):
    import retdm_keras.frozen_features as frozen_features

    def extract(*args, **kwargs):
        pytest.fail("the features were extracted before the schedule was checked")

    monkeypatch.setattr(frozen_features, "prepare_frozen_data", extract)
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    with pytest.raises(ValueError, match="one value per stage"):
        fit_stages(model, train, epochs=(1, 1), freeze_backbone=True)


def test_bad_schedule_is_an_error():
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    with pytest.raises(ValueError, match="one value per stage"):
        fit_stages(model, train, epochs=(1, 1))


@pytest.mark.slow
def test_short_real_run_beats_random_scores(shared_data, tmp_path, monkeypatch):
    """MobileNetV2 with ImageNet weights, 96 px, a MIML subset: mAP far above chance."""
    keras_home = shared_data / "keras_home"
    weights = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    if not (keras_home / "models" / weights).exists():
        pytest.skip("MobileNetV2 ImageNet weights not in the shared data")
    # read by the weights loader at call time
    monkeypatch.setenv("KERAS_HOME", str(private_keras_home(shared_data, tmp_path)))
    from retdm_keras.data import image_dataset, load_split, read_labels_csv

    scene = shared_data / "miml_scene"
    files = read_labels_csv(scene / "labels.csv")
    split = load_split(scene / "split.json")
    train_files = files.subset(split["train"][:600])
    test_files = files.subset(split["test"][:200])
    common = dict(image_size=96, batch_size=32, cache=True, seed=0)
    train = image_dataset(scene / "images", train_files, training=True, **common)
    bank = image_dataset(scene / "images", train_files, training=False, **common)
    test = image_dataset(scene / "images", test_files, training=False, **common)

    keras.utils.set_random_seed(0)
    model = RETDM(5, backbone="mobilenet_v2", image_size=96, weights="imagenet", lam=0.1, mu=0.1)
    histories = fit_stages(
        model,
        train,
        epochs=(3, 1, 1),
        learning_rates=(0.001, 0.01, 0.0005),
        bank_data=bank,
        freeze_backbone=False,  # this test fine-tunes; a pretrained backbone's default is frozen
        verbose=0,
    )
    assert np.all(np.isfinite(histories["joint"].history["metric_loss"]))
    scores = model.predict(test, verbose=0)
    result = evaluate(test_files.labels, scores)
    rng = np.random.default_rng(0)
    chance = [evaluate(test_files.labels, rng.random(scores.shape)) for _ in range(5)]
    chance_map = np.mean([c["mAP"] for c in chance])
    chance_ap = np.mean([c["average_precision"] for c in chance])
    assert result["mAP"] > chance_map + 0.3, (result, chance_map)
    assert result["average_precision"] > chance_ap + 0.2, (result, chance_ap)


def test_strategy_must_be_the_models_own():
    train, _, _ = synthetic()
    model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)  # built outside
    with pytest.raises(ValueError, match="strategy.scope"):
        fit_stages(model, train, epochs=(1, 0, 0), strategy=tf.distribute.MirroredStrategy())
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8)
    histories = fit_stages(model, train, epochs=(1, 0, 0), strategy=strategy, verbose=0)
    assert np.isfinite(histories["classifier"].history["loss"][0])
