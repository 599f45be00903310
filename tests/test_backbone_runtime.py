"""The fast backbone runtime (ONNX Runtime): parity with Keras, the converted-model store,
the fallback, the runtime policy, and predict / evaluate / extraction through it."""

from __future__ import annotations

import gc
import json
import os
import warnings
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_frozen_backbone import LABELS, SIZE, _datasets, _write_folder

from retdm_keras import RETDM
from retdm_keras import backbone_runtime as runtime
from retdm_keras.backbone_runtime import function as runtime_function
from retdm_keras.backbone_runtime import onnx_backbone
from retdm_keras.cli import build_parser
from retdm_keras.cli.common import backbone_runtime_option
from retdm_keras.embedders import ImageEmbedder
from retdm_keras.frozen_features import FeatureCache, cached_features, extract_features

TOLERANCE = runtime.PARITY_TOLERANCE


@pytest.fixture(autouse=True)
def fresh_runtime(monkeypatch, tmp_path):
    """Every test starts with no conversion in memory, the default runtime and its own
    ``KERAS_HOME`` (where predictions store converted backbones)."""
    monkeypatch.delenv(runtime.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    runtime.clear_backbone_functions()
    yield
    runtime.clear_backbone_functions()


def _images(count: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((count, size, size, 3)) * 255).astype(np.float32)


def _keras_features(embedder, images) -> np.ndarray:
    return embedder.backbone_features(images, training=False).numpy()


def _tiny_embedder(seed: int = 0) -> ImageEmbedder:
    keras.utils.set_random_seed(seed)
    return ImageEmbedder("tiny_cnn", image_size=SIZE, embed_dim=8)


def _pretrained_model(seed: int = 0) -> RETDM:
    """A small model that counts as pretrained (predictions take the fast path)."""
    keras.utils.set_random_seed(seed)
    return RETDM(
        len(LABELS),
        backbone="tiny_cnn",
        image_size=SIZE,
        embed_dim=8,
        label_hidden_units=16,
        pretrained_backbone=True,
    )


class OnnxCalls:
    """Counts the batches ONNX Runtime runs."""

    def __init__(self, monkeypatch):
        self.batches = 0
        original = runtime.OnnxBackbone.__call__

        def counted(backbone, images):
            self.batches += 1
            return original(backbone, images)

        monkeypatch.setattr(runtime.OnnxBackbone, "__call__", counted)


# --------------------------------------------------------------------------- parity
def test_relative_difference_against_numpy():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(5, 7))
    features = reference + rng.normal(scale=1e-3, size=(5, 7))
    expected = np.abs(features - reference).max() / np.abs(reference).max()
    assert runtime.relative_difference(features, reference) == pytest.approx(expected)
    assert runtime.relative_difference(reference, reference) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        runtime.relative_difference(features[:2], reference)


def test_onnx_features_equal_keras_for_a_random_cnn(tmp_path):
    embedder = _tiny_embedder()
    function = runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    assert function.runtime == "onnx"
    images = _images(9, seed=1)  # a batch size the probe never used
    got = function(images)
    assert got.dtype == np.float32 and got.shape == (9, embedder.feature_dim)
    assert runtime.relative_difference(got, _keras_features(embedder, images)) <= TOLERANCE


@pytest.mark.usefixtures("imagenet_keras_home")
def test_onnx_features_equal_keras_for_imagenet_mobilenet_on_real_images(shared_data):
    from PIL import Image

    scene = shared_data / "miml_scene" / "images"
    files = sorted(scene.iterdir())[:6]
    images = np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((96, 96)), np.float32) for f in files]
    )
    embedder = ImageEmbedder("mobilenet", image_size=96, weights="imagenet", embed_dim=8)
    function = runtime.backbone_function(embedder, "onnx")
    assert function.runtime == "onnx"
    reference = _keras_features(embedder, images)
    assert np.abs(reference).max() > 0.1  # real features, not a degenerate all-zero case
    assert runtime.relative_difference(function(images), reference) <= TOLERANCE


def test_large_batches_run_in_chunks_with_the_same_features(tmp_path):
    embedder = _tiny_embedder()
    runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    (model_file,) = tmp_path.glob("*.onnx")
    whole = runtime.OnnxBackbone(model_file.read_bytes(), chunk=64)
    chunked = runtime.OnnxBackbone(model_file.read_bytes(), chunk=4)
    images = _images(10, seed=3)
    np.testing.assert_allclose(chunked(images), whole(images), rtol=1e-6, atol=1e-7)
    assert chunked(images).shape == (10, embedder.feature_dim)


def test_a_wrong_image_shape_is_a_clear_error(tmp_path):
    function = runtime.backbone_function(_tiny_embedder(), "onnx", store_dir=tmp_path)
    with pytest.raises(ValueError, match=r"images must be \(batch, 16, 16, 3\)"):
        function(_images(2, size=24))


# --------------------------------------------------------------------------- the store
def test_a_conversion_is_stored_once_and_reused(tmp_path, monkeypatch):
    embedder = _tiny_embedder()
    runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    (model_file,) = tmp_path.glob("*.onnx")
    manifest = json.loads(model_file.with_suffix(".json").read_text())
    assert manifest["key"] == model_file.stem
    assert manifest["description"]["weights_sha256"] == runtime.backbone_weights_sha256(embedder)
    assert manifest["description"]["parity"] <= TOLERANCE

    runtime.clear_backbone_functions()  # a new process: memory empty, the file still there

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the store holds the model")

    monkeypatch.setattr(runtime_function, "convert_backbone", no_conversion)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hit warns about nothing
        function = runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    assert function.runtime == "onnx"
    images = _images(3)
    assert runtime.relative_difference(function(images), _keras_features(embedder, images)) <= (
        TOLERANCE
    )


@pytest.mark.parametrize("damage", ["truncated", "other_version", "manifest_garbage"])
def test_a_corrupt_or_stale_conversion_is_rebuilt_with_a_warning(tmp_path, damage):
    embedder = _tiny_embedder()
    runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    (model_file,) = tmp_path.glob("*.onnx")
    manifest_file = model_file.with_suffix(".json")
    if damage == "truncated":
        model_file.write_bytes(model_file.read_bytes()[:200])
    elif damage == "other_version":
        manifest = json.loads(manifest_file.read_text())
        manifest["version"] = -1
        manifest_file.write_text(json.dumps(manifest))
    else:
        manifest_file.write_text("{not json")
    runtime.clear_backbone_functions()
    with pytest.warns(runtime.BackboneRuntimeWarning, match="stale or corrupt"):
        function = runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    assert function.runtime == "onnx"
    images = _images(4)
    assert runtime.relative_difference(function(images), _keras_features(embedder, images)) <= (
        TOLERANCE
    )
    # rebuilt in place: the next process loads it cleanly
    runtime.clear_backbone_functions()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.backbone_function(embedder, "onnx", store_dir=tmp_path).runtime == "onnx"


def test_new_weights_get_a_new_conversion(tmp_path):
    embedder = _tiny_embedder()
    first = runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    images = _images(4)
    before = first(images)
    embedder.backbone.set_weights([w * 1.5 for w in embedder.backbone.get_weights()])
    second = runtime.backbone_function(embedder, "onnx", store_dir=tmp_path)
    after = second(images)
    assert runtime.relative_difference(after, _keras_features(embedder, images)) <= TOLERANCE
    assert runtime.relative_difference(after, before) > 0.1
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_the_store_keeps_the_most_recent_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime.store, "MAX_ENTRIES", 2)
    store = runtime.ConvertedBackboneStore(tmp_path)
    for key in ("a", "b", "c"):
        store.save(key, key.encode() * 10, {"key": key})
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["b", "c"]
    assert sorted(p.stem for p in tmp_path.glob("*.onnx")) == ["b", "c"]
    assert store.load("c")[0] == b"c" * 10


def test_an_unwritable_store_keeps_the_conversion_in_memory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    embedder = _tiny_embedder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an optimisation cache that cannot be written is quiet
        function = runtime.backbone_function(embedder, "onnx", store_dir=blocker / "store")
    assert function.runtime == "onnx"
    images = _images(2)
    assert runtime.relative_difference(function(images), _keras_features(embedder, images)) <= (
        TOLERANCE
    )


# --------------------------------------------------------------------------- the fallback
def test_a_backbone_that_cannot_be_converted_falls_back_to_keras_once(tmp_path, monkeypatch):
    def unsupported(embedder):
        raise RuntimeError("op MadeUpOp is not supported")

    monkeypatch.setattr(runtime_function, "convert_backbone", unsupported)
    embedder = _tiny_embedder()
    with pytest.warns(runtime.BackboneRuntimeWarning, match="MadeUpOp"):
        function = runtime.backbone_function(embedder, "auto", store_dir=tmp_path)
    assert function.runtime == "keras"
    images = _images(3)
    expected = _keras_features(embedder, images)
    # the same Keras weights through a compiled call: float32 rounding, relative to the scale
    # of the features (an element near 0 can differ by more than 1e-5 of itself)
    np.testing.assert_allclose(
        function(images), expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max())
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per weights, not at every call
        assert runtime.backbone_function(embedder, "auto", store_dir=tmp_path).runtime == "keras"
    assert list(tmp_path.glob("*.onnx")) == []


def test_a_conversion_that_does_not_match_keras_is_not_used(tmp_path, monkeypatch):
    original = runtime.OnnxBackbone.__call__

    def off_by_a_lot(backbone, images):
        return original(backbone, images) * 1.01

    monkeypatch.setattr(runtime.OnnxBackbone, "__call__", off_by_a_lot)
    with pytest.warns(runtime.BackboneRuntimeWarning, match="differ from Keras"):
        function = runtime.backbone_function(_tiny_embedder(), "onnx", store_dir=tmp_path)
    assert function.runtime == "keras"
    assert list(tmp_path.glob("*.onnx")) == []


# --------------------------------------------------------------------------- the policy
def test_runtime_policy(monkeypatch):
    embedder = _tiny_embedder()
    assert runtime.resolve_backbone_runtime(embedder, "auto") == ("onnx", None)
    assert runtime.resolve_backbone_runtime(embedder, "keras") == ("keras", None)
    monkeypatch.setenv(runtime.ENVIRONMENT_VARIABLE, "keras")
    assert runtime.resolve_backbone_runtime(embedder) == ("keras", None)
    monkeypatch.setenv(runtime.ENVIRONMENT_VARIABLE, "fast")
    with pytest.raises(ValueError, match="RETDM_BACKBONE_RUNTIME='fast'"):
        runtime.default_backbone_runtime()
    with pytest.raises(ValueError, match="must be one of"):
        runtime.check_runtime("tflite")
    monkeypatch.delenv(runtime.ENVIRONMENT_VARIABLE)

    mlp = ImageEmbedder("mlp", input_dim=6, embed_dim=4)
    assert runtime.resolve_backbone_runtime(mlp, "auto") == ("keras", None)
    chosen, reason = runtime.resolve_backbone_runtime(mlp, "onnx")
    assert chosen == "keras" and "no image backbone" in reason

    half = ImageEmbedder("tiny_cnn", image_size=SIZE, embed_dim=8, dtype="mixed_float16")
    assert runtime.resolve_backbone_runtime(half, "auto") == ("keras", None)
    with pytest.warns(runtime.BackboneRuntimeWarning, match="float16"):
        assert runtime.backbone_function(half, "onnx").runtime == "keras"

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        assert runtime.resolve_backbone_runtime(embedder, "auto") == ("keras", None)


def test_cli_backbone_runtime_option_sets_the_default_while_a_command_runs(monkeypatch):
    for command in (
        ["predict", "m.keras", "a.jpg"],
        ["evaluate", "m.keras"],
        ["tune", "--out", "o"],
    ):
        args = build_parser().parse_args([*command, "--backbone-runtime", "keras"])
        with backbone_runtime_option(args):
            assert runtime.default_backbone_runtime() == "keras"
        assert runtime.ENVIRONMENT_VARIABLE not in os.environ  # restored after the command
        monkeypatch.setenv(runtime.ENVIRONMENT_VARIABLE, "onnx")
        with backbone_runtime_option(build_parser().parse_args(command)):
            assert runtime.default_backbone_runtime() == "onnx"  # no option: left alone
        monkeypatch.delenv(runtime.ENVIRONMENT_VARIABLE)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "m", "a.jpg", "--backbone-runtime", "tflite"])


# --------------------------------------------------------------------------- the model
def test_predict_and_evaluate_take_the_fast_path_with_keras_parity(monkeypatch):
    model = _pretrained_model()
    model.compile(optimizer="sgd")
    images = _images(21, seed=5)
    labels = (np.random.default_rng(5).random((21, len(LABELS))) > 0.5).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"images": images, "index": np.arange(21)}, labels)
    ).batch(8)

    model.backbone_runtime = "keras"
    expected = {
        "array": model.predict(images, batch_size=8, verbose=0),
        "evaluate": model.evaluate(dataset, verbose=0, return_dict=True),
        "labels": model.predict_labels(images, threshold=0.5),
    }
    model.backbone_runtime = "onnx"  # what "auto" gives on a CPU
    model.predict(images[:1], verbose=0)  # converts (and checks on a probe batch) once
    calls = OnnxCalls(monkeypatch)
    got_array = model.predict(images, batch_size=8, verbose=0)
    assert calls.batches == 3  # 21 images in batches of 8
    got_dict = model.predict({"images": images}, verbose=0)
    got_dataset = model.predict(dataset, verbose=0)
    got_plain = model.predict(tf.data.Dataset.from_tensor_slices(images).batch(5), verbose=0)
    assert calls.batches == 3 + 1 + 3 + 5
    for got in (got_array, got_dict, got_dataset, got_plain):
        assert got.shape == expected["array"].shape
        assert runtime.relative_difference(got, expected["array"]) <= TOLERANCE
    evaluated = model.evaluate(dataset, verbose=0, return_dict=True)
    assert calls.batches == 15
    assert evaluated.keys() == expected["evaluate"].keys()
    for name, value in expected["evaluate"].items():
        assert evaluated[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    arrays = model.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    assert arrays["cls_loss"] == pytest.approx(expected["evaluate"]["cls_loss"], rel=1e-4)
    decided = model.predict_labels(images, threshold=0.5)
    disagree = [
        i for i, (a, b) in enumerate(zip(decided, expected["labels"], strict=True)) if a != b
    ]
    # a label may flip only where its probability is within the tolerance of the threshold
    assert all(np.min(np.abs(expected["array"][i] - 0.5)) < 1e-4 for i in disagree)


def test_predict_keeps_keras_where_the_fast_path_does_not_apply(tmp_path, monkeypatch):
    calls = OnnxCalls(monkeypatch)
    images = _images(6)
    keras.utils.set_random_seed(0)
    scratch = RETDM(len(LABELS), backbone="tiny_cnn", image_size=SIZE, embed_dim=8)
    scratch.predict(images, verbose=0)  # a from-scratch backbone that is not frozen
    model = _pretrained_model()
    model.backbone_runtime = "keras"
    model.predict(images, verbose=0)
    model.backbone_runtime = "auto"
    model.predict(images, steps=1, verbose=0)  # steps: Keras' loop
    model.predict(images, callbacks=[keras.callbacks.Callback()], verbose=0)
    assert calls.batches == 0
    with pytest.raises(ValueError, match="must be one of"):
        model.backbone_runtime = "fast"
    assert list(tmp_path.rglob("*.onnx")) == []


# --------------------------------------------------------------------------- extraction
def test_extraction_through_onnx_equals_keras_and_shares_the_cache(tmp_path, monkeypatch):
    folder = _write_folder(tmp_path / "data")
    train, val, _ = _datasets(folder)
    model = _pretrained_model()
    calls = OnnxCalls(monkeypatch)
    keras_views, keras_labels = extract_features(
        model, val, verbose=0, runtime="keras", store_dir=tmp_path / "store"
    )
    assert calls.batches == 0
    onnx_views, onnx_labels = extract_features(
        model, val, verbose=0, runtime="onnx", store_dir=tmp_path / "store"
    )
    assert calls.batches > 0
    np.testing.assert_array_equal(onnx_labels, keras_labels)
    assert runtime.relative_difference(onnx_views, keras_views) <= TOLERANCE

    cache = FeatureCache(tmp_path / "features")
    runtime.clear_backbone_functions()  # a new process
    model.backbone_runtime = "onnx"
    cached_features(model, val, cache=cache, verbose=0)
    assert list((tmp_path / "features" / "backbones").glob("*.onnx"))  # beside the features
    model.backbone_runtime = "keras"
    seen = calls.batches
    features, _ = cached_features(model, val, cache=cache, verbose=0)  # a hit: no pass at all
    assert calls.batches == seen
    assert runtime.relative_difference(features, keras_views) <= TOLERANCE


def test_extraction_says_which_runtime_ran(tmp_path, capsys):
    folder = _write_folder(tmp_path / "data")
    _, val, _ = _datasets(folder)
    model = _pretrained_model()
    extract_features(model, val, verbose=2, runtime="onnx", store_dir=tmp_path / "store")
    assert "ONNX Runtime" in capsys.readouterr().out
    extract_features(model, val, verbose=2, runtime="keras")
    assert "Keras" in capsys.readouterr().out


def test_convert_backbone_refuses_mlp():
    with pytest.raises(ValueError, match="only image backbones"):
        onnx_backbone.convert_backbone(ImageEmbedder("mlp", input_dim=4, embed_dim=4))


def test_fast_predictions_follow_the_prediction_settings(monkeypatch):
    """The compiled heads (and Keras' compiled steps) are rebuilt when what a prediction mixes
    in changes: the label sets (A, predict, B, C, predict: C may reuse A's memory), the
    label-set weight, λ, the embedding norm."""
    model = _pretrained_model()
    images = _images(7, seed=2)
    calls = OnnxCalls(monkeypatch)

    def both():
        model.backbone_runtime = "keras"
        expected = model.predict(images, verbose=0)
        model.backbone_runtime = "onnx"
        seen = calls.batches
        got = model.predict(images, verbose=0)
        assert calls.batches > seen  # ONNX Runtime ran
        assert runtime.relative_difference(got, expected) <= TOLERANCE
        return got

    first = both()  # no label sets: the classifier alone
    model.label_sets = [[0], [1, 2], [0, 2]]
    mixed = both()
    model.backbone_runtime = "keras"
    on_batch = np.asarray(model.predict_on_batch(images))  # Keras' compiled step, retraced
    assert runtime.relative_difference(on_batch, mixed) <= TOLERANCE
    assert runtime.relative_difference(mixed, first) > 1e-3
    model.label_sets = [[1], [0, 1, 2]]
    model.label_sets = [[0], [1, 2], [0, 2], [1]]
    again = both()
    assert runtime.relative_difference(again, mixed) > 1e-3
    for name, value in (("label_set_weight", 0.9), ("embedding_norm", 5.0), ("lam", 0.0)):
        before = both()
        setattr(model, name, value)
        assert runtime.relative_difference(both(), before) > 1e-4, name


def test_the_caches_keep_no_model_alive():
    model = _pretrained_model()
    model.backbone_runtime = "onnx"
    model.predict(_images(3), verbose=0)
    model.backbone_runtime = "keras"
    extract_features(
        model, tf.data.Dataset.from_tensor_slices((_images(4), np.eye(4, 3))).batch(2), verbose=0
    )
    refs = [weakref.ref(model), weakref.ref(model.image_embedder)]
    del model
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_evaluate_keeps_the_batches_and_falls_back_where_it_must(monkeypatch):
    model = _pretrained_model()
    images = _images(21, seed=7)
    labels = (np.random.default_rng(7).random((21, len(LABELS))) > 0.5).astype(np.float32)
    parts = [(0, 8), (8, 11), (11, 19), (19, 21)]  # batches of 8, 3, 8 and 2
    dataset = None
    for start, stop in parts:
        part = tf.data.Dataset.from_tensor_slices(
            ({"images": images[start:stop], "index": np.arange(start, stop)}, labels[start:stop])
        ).batch(8)
        dataset = part if dataset is None else dataset.concatenate(part)
    model.backbone_runtime = "onnx"
    calls = OnnxCalls(monkeypatch)
    with pytest.raises(ValueError, match="compile"):
        model.evaluate(dataset, verbose=0)  # Keras' own error, before any backbone pass
    assert calls.batches == 0
    model.compile(optimizer="sgd")
    model.label_sets = [[0], [1, 2], [0, 2]]
    model.backbone_runtime = "keras"
    expected = model.evaluate(dataset, verbose=0, return_dict=True)
    model.backbone_runtime = "onnx"
    got = model.evaluate(dataset, verbose=0, return_dict=True)
    assert calls.batches >= len(parts)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    seen = calls.batches
    weights = np.ones(21, np.float32)
    model.evaluate(images, labels, sample_weight=weights, verbose=0)  # Keras' loop
    assert calls.batches == seen
    with pytest.raises(ValueError, match="evaluate needs labels"):
        model.evaluate(tf.data.Dataset.from_tensor_slices(images).batch(8), verbose=0)
    with pytest.raises(ValueError, match="evaluate needs labels"):
        model.evaluate(images, verbose=0)


def test_no_fast_backbone_while_fit_trains_it(monkeypatch):
    """A callback that predicts during fine-tuning gets Keras (the weights change every step;
    converting them each time would cost seconds); after fit, the fast path is back."""
    model = _pretrained_model()
    model.backbone_runtime = "onnx"
    images = _images(8, seed=4)
    labels = np.eye(len(LABELS), dtype=np.float32)[np.arange(8) % len(LABELS)]
    data = tf.data.Dataset.from_tensor_slices(
        ({"images": images, "index": np.arange(8)}, labels)
    ).batch(4)
    calls = OnnxCalls(monkeypatch)

    class PredictEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model.predict(images, verbose=0)

    model.prepare_training(data)
    model.set_stage("classifier")
    model.compile(optimizer="sgd")
    assert model.image_embedder.backbone.trainable
    model.fit(data, epochs=2, verbose=0, callbacks=[PredictEachEpoch()])
    assert calls.batches == 0
    model.predict(images, verbose=0)
    assert calls.batches > 0
