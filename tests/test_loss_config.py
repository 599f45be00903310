"""``LossConfig``: the loss settings as one object (issue #31, part 5).

Its validation, its config round trip, each predicate against a hand-written table over a
grid of (λ, μ) with zeros, ``RETDM`` built from keywords and from a ``LossConfig`` (the same
config, the same losses, both equal to a numpy computation), the per-stage trainable flags,
and that saved configs — today's flat keys, and the packaged zoo entries — load and predict
as before.
"""

from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from references import reference_two_way

from retdm_keras import RETDM, LossConfig, zoo
from retdm_keras.model import LOSS_FIELDS
from retdm_keras.neighbors import LabelNeighbors
from retdm_keras.zoo.registry import packaged_registry_path

NUM_LABELS = 4
SIZE = 16
STAGES = ("classifier", "metric", "joint")


def tiny_model(**kwargs) -> RETDM:
    keras.utils.set_random_seed(0)
    return RETDM(
        NUM_LABELS,
        backbone="tiny_cnn",
        image_size=SIZE,
        embed_dim=8,
        label_hidden_units=16,
        num_neighbors=3,
        name="retdm",
        **kwargs,
    )


def distinct_data(n: int = 10):
    """Images and ``n`` distinct label sets (one image each: the neighbor images are fixed)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(n, SIZE, SIZE, 3)).astype("float32")
    codes = rng.permutation(2**NUM_LABELS - 1)[:n] + 1
    labels = ((codes[:, None] >> np.arange(NUM_LABELS)) & 1).astype("float32")
    return {"images": images, "index": np.arange(n)}, labels


# ------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lam", -0.1, "lam must be >= 0"),
        ("mu", -1, "mu must be >= 0"),
        ("alpha", -0.5, "alpha must be >= 0"),
        ("margin", -0.2, "margin must be >= 0"),
        ("lam", float("nan"), "lam must be finite"),
        ("mu", float("inf"), "mu must be finite"),
        ("alpha", "high", "alpha must be a number"),
        ("margin", None, "margin must be a number"),
        ("distance", "cosine", "distance must be one of"),
        ("hinge_reduction", "max", "hinge_reduction must be one of"),
        ("embedding_norm", 0.0, "embedding_norm must be > 0 or None"),
        ("embedding_norm", -2.0, "embedding_norm must be > 0 or None"),
        ("embedding_norm", float("inf"), "embedding_norm must be finite"),
        ("embedding_norm", "big", "embedding_norm must be a number"),
    ],
)
def test_invalid_values_are_a_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**{field: value})
    with pytest.raises(ValueError, match=message):  # the same check through RETDM
        RETDM(NUM_LABELS, backbone="mlp", input_dim=3, embed_dim=4, **{field: value})
    with pytest.raises(ValueError, match=message):  # and through replace / model.<field> =
        LossConfig().replace(**{field: value})


def test_values_are_stored_as_floats_and_fields_are_keyword_only():
    config = LossConfig(lam=1, mu=np.float32(0.5), margin=0, embedding_norm=3)
    assert [type(getattr(config, f)) for f in ("lam", "mu", "margin", "embedding_norm")] == [
        float
    ] * 4
    assert LossConfig(embedding_norm=None).embedding_norm is None
    with pytest.raises(TypeError):
        LossConfig(0.5)  # the fields are keyword-only: no guessing which is λ


def test_defaults_are_retdms():
    defaults = inspect.signature(RETDM).parameters
    config = LossConfig()
    assert LOSS_FIELDS == (
        "lam",
        "mu",
        "alpha",
        "margin",
        "distance",
        "embedding_norm",
        "hinge_reduction",
    )
    for field in LOSS_FIELDS:
        assert getattr(config, field) == defaults[field].default, field


# ------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    "config",
    [
        LossConfig(),
        LossConfig(lam=0.0, mu=0.0),
        LossConfig(
            lam=0.7,
            mu=1.3,
            alpha=0.5,
            margin=0.2,
            distance="euclidean",
            embedding_norm=None,
            hinge_reduction="sum",
        ),
    ],
)
def test_config_round_trip(config):
    as_dict = config.get_config()
    assert list(as_dict) == list(LOSS_FIELDS)
    assert json.loads(json.dumps(as_dict)) == as_dict  # JSON-serializable
    assert LossConfig.from_config(as_dict) == config
    serialized = keras.saving.serialize_keras_object(config)
    assert serialized["registered_name"] == "retdm_keras>LossConfig"
    assert keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized))) == config


def test_replace_is_a_validated_copy():
    config = LossConfig(lam=0.3)
    changed = config.replace(mu=0.0)
    assert (config.mu, changed.mu, changed.lam) == (1.0, 0.0, 0.3)
    with pytest.raises(ValueError, match="mu must be >= 0"):
        config.replace(mu=-1.0)


@pytest.mark.parametrize(
    "margin, distance, embedding_norm, expected",
    [
        (0.2, "sqeuclidean", None, 0.2),
        (0.2, "euclidean", None, 0.2),
        (0.2, "sqeuclidean", 3.0, 1.8),  # r² · margin
        (0.2, "euclidean", 3.0, 0.6),  # r · margin
        (0.0, "sqeuclidean", 2.0, 0.0),
    ],
)
def test_metric_margin(margin, distance, embedding_norm, expected):
    config = LossConfig(margin=margin, distance=distance, embedding_norm=embedding_norm)
    assert config.metric_margin == pytest.approx(expected)


# ------------------------------------------------------------------------ predicates
# (lam, mu) -> metric_trains, reconstruction_trains, label_side_trains, and
# stage_trains for classifier / metric / joint, written out by hand
PREDICATES = {
    (0.0, 0.0): (False, False, False, (True, False, True)),
    (0.0, 2.0): (False, True, True, (True, True, True)),
    (0.5, 0.0): (True, False, True, (True, True, True)),
    (0.5, 2.0): (True, True, True, (True, True, True)),
    (1e-8, 0.0): (True, False, True, (True, True, True)),
    (0.0, 1e-8): (False, True, True, (True, True, True)),
}
# (lam, mu) -> per stage (classifier, metric, joint): (metric, reconstruction, label side)
# trains in that stage; the same as the label embedder's and reconstruction head's flags
PER_STAGE = {
    (0.0, 0.0): ((False, False, False), (False, False, False), (False, False, False)),
    (0.0, 2.0): ((False, False, False), (False, True, True), (False, True, True)),
    (0.5, 0.0): ((False, False, False), (True, False, True), (True, False, True)),
    (0.5, 2.0): ((False, False, False), (True, True, True), (True, True, True)),
    (1e-8, 0.0): ((False, False, False), (True, False, True), (True, False, True)),
    (0.0, 1e-8): ((False, False, False), (False, True, True), (False, True, True)),
}


@pytest.mark.parametrize("lam, mu", sorted(PREDICATES))
def test_predicates(lam, mu):
    config = LossConfig(lam=lam, mu=mu)
    metric, reconstruction, label_side, stage_trains = PREDICATES[lam, mu]
    assert config.metric_trains is metric
    assert config.reconstruction_trains is reconstruction
    assert config.label_side_trains is label_side
    assert tuple(config.stage_trains(s) for s in STAGES) == stage_trains
    for stage, expected in zip(STAGES, PER_STAGE[lam, mu], strict=True):
        got = (
            config.metric_trains_in(stage),
            config.reconstruction_trains_in(stage),
            config.label_side_trains_in(stage),
        )
        assert got == expected, stage


def test_an_unknown_stage_is_a_value_error():
    config = LossConfig()
    for ask in (
        config.stage_trains,
        config.metric_trains_in,
        config.reconstruction_trains_in,
        config.label_side_trains_in,
    ):
        with pytest.raises(ValueError, match="stage must be one of"):
            ask("pretrain")


@pytest.mark.parametrize("lam, mu", sorted(PREDICATES))
def test_the_model_trains_what_the_predicates_say(lam, mu):
    model = RETDM(NUM_LABELS, backbone="mlp", input_dim=3, embed_dim=4, lam=lam, mu=mu)
    _, _, _, stage_trains = PREDICATES[lam, mu]
    for stage, trains, (_, reconstruction, label_side) in zip(
        STAGES, stage_trains, PER_STAGE[lam, mu], strict=True
    ):
        model.set_stage(stage)
        assert model.stage_trains(stage) is trains, stage
        assert model.label_embedder.trainable is label_side, stage
        assert model.reconstruction_head.trainable is reconstruction, stage
        # the image side is the stage's alone, whatever the loss weights
        assert model.classification_head.trainable is (stage != "metric"), stage
    # the label side's gradient factor 1/λ needs a metric term
    assert model.label_gradient_scale == (1.0 / lam if lam > 0 else 1.0)


# ------------------------------------------------------------------------ RETDM
CONFIGS = [
    {},
    {"lam": 0.7, "mu": 1.3, "alpha": 0.5, "margin": 0.2, "embedding_norm": None},
    {"lam": 0.4, "mu": 0.0, "margin": 0.1, "distance": "euclidean", "hinge_reduction": "sum"},
    {"lam": 0.0, "mu": 1.3},
]


@pytest.mark.parametrize("settings", CONFIGS)
def test_keywords_and_loss_config_make_the_same_model(settings):
    by_keywords = tiny_model(**settings)
    by_config = tiny_model(loss_config=LossConfig(**settings))
    assert by_config.loss_config == by_keywords.loss_config == LossConfig(**settings)
    assert by_config.get_config() == by_keywords.get_config()
    for field in LOSS_FIELDS:  # model.<field> reads the config
        assert getattr(by_config, field) == getattr(LossConfig(**settings), field), field

    x, y = distinct_data()
    logs = []
    for model in (by_keywords, by_config):
        model.set_stage("joint")
        model.compile(optimizer="sgd")
        model.prepare_training(tf.data.Dataset.from_tensor_slices((x, y)).batch(10))
        logs.append(model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True))
    assert logs[0] == logs[1]
    expected = numpy_losses(by_config, x, y, **settings)
    assert sorted(logs[0]) == sorted(["loss", *expected])  # terms of weight 0 are not logged
    for term, value in expected.items():
        assert logs[0][term] == pytest.approx(value, rel=1e-4), term
    lam, mu = settings.get("lam", 1.0), settings.get("mu", 1.0)
    total = expected["cls_loss"] + lam * expected.get("metric_loss", 0.0)
    total += mu * expected.get("rec_loss", 0.0)
    assert logs[0]["loss"] == pytest.approx(total, rel=1e-4)


def numpy_losses(
    model,
    x,
    y,
    lam=1.0,
    mu=1.0,
    alpha=1.0,
    margin=0.0,
    distance="sqeuclidean",
    embedding_norm=2.0,
    hinge_reduction="mean",
):
    """The loss terms of ``model`` on ``(x, y)``, computed in numpy from its layers' outputs
    (the terms of weight 0 left out, as the model's logs leave them out)."""
    n = len(y)

    def metric_space(e):
        e = np.asarray(e, np.float64)
        return (
            e
            if embedding_norm is None
            else embedding_norm * e / np.linalg.norm(e, axis=-1, keepdims=True)
        )

    u_raw = model.image_embedder(x["images"], training=False)
    p = np.asarray(model.classification_head(u_raw), np.float64)
    out = {"cls_loss": -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()}
    if mu > 0:
        rec = np.asarray(model.reconstruction_head(model.label_embedder(y)), np.float64)
        out["rec_loss"] = ((rec - y) ** 2).mean()
    if lam > 0:
        u, v = metric_space(u_raw), metric_space(model.label_embedder(y))
        index = LabelNeighbors(y, num_neighbors=3)
        nbr_labels, ids, mask = index.for_samples(np.arange(n))
        nbr = metric_space(model.label_embedder(nbr_labels.reshape(-1, NUM_LABELS)))
        member = index.member_indices[index.member_offsets[ids]]  # the only image of each set
        scale = 1.0 if embedding_norm is None else embedding_norm
        scale = scale**2 if distance == "sqeuclidean" else scale
        out["metric_loss"] = reference_two_way(
            u,
            v,
            nbr.reshape(n, 3, -1),
            u[member],
            mask,
            margin=margin * scale,
            alpha=alpha,
            distance=distance,
            hinge_reduction=hinge_reduction,
        ).mean()
    return out


@pytest.mark.parametrize(
    "keywords",
    [
        {"lam": 0.5},
        {"lam": 1.0},  # written out at its default: still a conflict
        {"distance": "euclidean"},
        {"embedding_norm": None},
        {"mu": 1.0, "hinge_reduction": "sum"},
    ],
)
def test_a_keyword_that_conflicts_with_loss_config_is_a_value_error(keywords):
    config = LossConfig(lam=0.1, mu=1.0)
    name = next(k for k in keywords if keywords[k] != getattr(config, k))
    with pytest.raises(ValueError, match=f"{name}=.* conflicts with loss_config"):
        RETDM(NUM_LABELS, backbone="mlp", input_dim=3, loss_config=config, **keywords)


def test_a_positional_loss_argument_counts_as_written():
    with pytest.raises(ValueError, match="lam=1.0 conflicts with loss_config"):
        RETDM(NUM_LABELS, "mlp", 224, 8, 10, 1.0, input_dim=3, loss_config=LossConfig(lam=0.1))


def test_keywords_that_agree_with_loss_config_are_accepted():
    config = LossConfig(lam=0.1, mu=0.0, embedding_norm=None)
    model = RETDM(
        NUM_LABELS,
        backbone="mlp",
        input_dim=3,
        loss_config=config,
        lam=0.1,
        mu=0,
        alpha=1.0,
        embedding_norm=None,
    )
    assert model.loss_config == config
    with pytest.raises(ValueError, match="loss_config must be a LossConfig"):
        RETDM(NUM_LABELS, backbone="mlp", input_dim=3, loss_config=0.5)


def test_setting_a_loss_attribute_replaces_the_config():
    model = RETDM(NUM_LABELS, backbone="mlp", input_dim=3, embed_dim=4)
    before = model.loss_config
    model.mu = 0.0
    model.alpha = 0
    assert model.loss_config == before.replace(mu=0.0, alpha=0.0)
    assert before.mu == 1.0  # the old config is unchanged (frozen)
    model.set_stage("metric")
    assert not model.reconstruction_head.trainable  # the stage follows the new μ
    assert model.get_config()["mu"] == 0.0
    with pytest.raises(ValueError, match="lam must be >= 0"):
        model.lam = -1.0
    assert model.lam == 1.0


# ------------------------------------------------------------------------ saved configs
# RETDM.get_config() as written before LossConfig existed (flat loss keys), for an "mlp"
# model; a file saved then must build the same model now, and be written back unchanged.
TODAYS_CONFIG = {
    "name": "retdm",
    "num_labels": 3,
    "backbone": "mlp",
    "image_size": [224, 224],
    "embed_dim": 8,
    "num_neighbors": 5,
    "lam": 0.3,
    "mu": 0.0,
    "alpha": 0.5,
    "margin": 0.1,
    "distance": "euclidean",
    "embedding_norm": None,
    "neighbor_images": "memory_bank",
    "decouple_label_rate": True,
    "backbone_metric_weight": 0.1,
    "hinge_reduction": "sum",
    "tie_break": "random",
    "label_set_weight": 0.5,
    "label_set_temperature": 1.0,
    "label_sets": [[0], [1, 2], [2]],
    "weights": None,
    "pretrained_backbone": False,
    "backbone_width": None,
    "input_dim": 6,
    "label_hidden_units": 8,
    "label_activation": "tanh",
    "dropout": 0.0,
    "freeze_batchnorm": False,
    "standardize": True,
    "linear_skip": True,
    "baseline_weight": 0.0,
    "baseline_head": False,
    "label_names": None,
    "thresholds": None,
    "top_k": None,
    "stage": "metric",
}
TODAYS_LOSS = LossConfig(
    lam=0.3,
    mu=0.0,
    alpha=0.5,
    margin=0.1,
    distance="euclidean",
    embedding_norm=None,
    hinge_reduction="sum",
)


def test_a_config_in_todays_flat_format_loads_and_is_written_back_unchanged():
    model = RETDM.from_config(dict(TODAYS_CONFIG))
    assert model.loss_config == TODAYS_LOSS
    assert model.get_config() == TODAYS_CONFIG
    assert model.stage == "metric" and not model.reconstruction_head.trainable  # μ = 0
    # through Keras' own serialization, as a .keras file or a zoo entry goes
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    assert serialized["config"] == TODAYS_CONFIG
    assert keras.saving.deserialize_keras_object(serialized).get_config() == TODAYS_CONFIG


@pytest.mark.parametrize("nested", ["dict", "keras"])
def test_from_config_also_takes_a_nested_loss_config(nested):
    config = {k: v for k, v in TODAYS_CONFIG.items() if k not in LOSS_FIELDS}
    if nested == "dict":
        config["loss_config"] = TODAYS_LOSS.get_config()
    else:
        config["loss_config"] = keras.saving.serialize_keras_object(TODAYS_LOSS)
    model = RETDM.from_config(json.loads(json.dumps(config)))
    assert model.loss_config == TODAYS_LOSS
    assert model.get_config() == TODAYS_CONFIG  # written back in the flat form


def test_a_saved_model_loads_with_the_same_loss_and_predictions(tmp_path):
    model = RETDM.from_config(dict(TODAYS_CONFIG))
    x = np.linspace(-1.0, 1.0, 4 * 6, dtype="float32").reshape(4, 6)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.loss_config == TODAYS_LOSS
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# The packaged zoo entries' predictions on fixed inputs, recorded with the library as it was
# before LossConfig (commit 3751ffe): loading them must give the same model.
PACKAGED_PREDICTIONS = {
    "scene-features": [
        [0.009374, 0.024133, 0.002297, 0.006672, 0.586397, 0.229754],
        [0.00091, 0.001959, 0.991985, 0.009466, 0.017585, 0.002992],
        [0.001985, 0.002939, 0.97825, 0.008673, 0.078758, 0.003936],
    ],
    "scene": [
        [0.188601, 0.032071, 0.271868, 0.904348, 0.057759],
        [0.100113, 0.042078, 0.188492, 0.954282, 0.1863],
    ],
    "ucm": [
        [
            0.00804,
            0.104427,
            0.027871,
            0.048843,
            0.028761,
            0.012904,
            0.047348,
            0.464976,
            0.086437,
            0.011582,
            0.09798,
            0.258204,
            0.198282,
            0.021379,
            0.067742,
            0.045378,
            0.057787,
        ],
        [
            0.014591,
            0.113189,
            0.063305,
            0.060093,
            0.012731,
            0.019171,
            0.020713,
            0.309759,
            0.184536,
            0.024226,
            0.122797,
            0.211355,
            0.145295,
            0.012216,
            0.070932,
            0.101044,
            0.069935,
        ],
    ],
}


def fixed_features() -> np.ndarray:
    f = np.linspace(0.0, 1.0, 294, dtype="float32")
    return np.stack([np.zeros(294, "float32"), f, np.cos(7 * f) ** 2]).astype("float32")


def fixed_images() -> np.ndarray:
    ramp = np.linspace(0.0, 255.0, 224, dtype="float32")
    gray = np.full((224, 224, 3), 128.0, "float32")
    ramps = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (224, 1)), np.tile(ramp[:, None], (1, 224))],
        -1,
    )
    return np.stack([gray, ramps]).astype("float32")


def check_packaged_entry(name: str, inputs: np.ndarray) -> None:
    registry = json.loads(packaged_registry_path().read_text(encoding="utf-8"))
    record = registry["models"][name]
    version = max(record["versions"], key=int)
    entry = packaged_registry_path().parent / "entries" / name / version
    saved = json.loads((entry / "config.json").read_text(encoding="utf-8"))["config"]
    model = zoo.load(entry)
    for field in LOSS_FIELDS:
        expected = saved.get(field, getattr(LossConfig(), field))
        assert getattr(model.loss_config, field) == expected, field
        assert model.get_config()[field] == expected, field
    predictions = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(predictions, PACKAGED_PREDICTIONS[name], atol=2e-6)


def test_the_packaged_feature_entry_loads_and_predicts_as_before(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    check_packaged_entry("scene-features", fixed_features())


@pytest.mark.usefixtures("imagenet_keras_home")
@pytest.mark.parametrize("name", ["scene", "ucm"])
def test_the_packaged_image_entries_load_and_predict_as_before(name):
    check_packaged_entry(name, fixed_images())
