"""Export: ONNX Runtime, TFLite and SavedModel reproduce Keras; metadata travels along."""

import json
import warnings

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf

from retdm_keras import RETDM
from retdm_keras.export import (
    SAVED_MODEL_METADATA,
    benchmark_latency,
    export_all,
    export_model,
    inference_model,
    model_metadata,
    read_metadata,
)

SIZE = 24
NAMES = ["sky", "sea", "tree"]
THRESHOLDS = [0.4, 0.55, 0.5]


def tiny_model(**kwargs):
    keras.utils.set_random_seed(0)
    defaults = dict(backbone="tiny_cnn", image_size=SIZE, embed_dim=8, label_hidden_units=8)
    return RETDM(3, **{**defaults, **kwargs})


def images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model(label_names=NAMES, thresholds=THRESHOLDS)
    paths = export_all(model, tmp_path_factory.mktemp("export"))
    return model, paths


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {session.get_inputs()[0].name: x})[0]


def run_tflite(path, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_inference_model_is_the_prediction_path(exported):
    model, _ = exported
    graph = inference_model(model)
    x = images(5)
    got = graph(x)["probabilities"]
    assert got.dtype == "float32"
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-6)
    # the label branch is not part of the graph
    names = {layer.name for layer in graph.layers}
    assert "label_embedder" not in names and "reconstruction_head" not in names


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_runtime_matches_keras(exported, batch):
    model, paths = exported
    x = images(batch, seed=batch)
    got = run_onnx(paths["onnx"], x)
    assert got.shape == (batch, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_onnx_signature_and_metadata(exported):
    model, paths = exported
    proto = onnx.load(str(paths["onnx"]))
    (inp,) = proto.graph.input
    assert inp.name == "images"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [SIZE, SIZE, 3]
    assert [o.name for o in proto.graph.output] == ["probabilities"]
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["label_names"] == NAMES
    assert props["thresholds"] == pytest.approx(THRESHOLDS)
    assert props["image_size"] == [SIZE, SIZE]
    assert props["backbone"] == "tiny_cnn"
    assert props["library_version"] == "0.1.0"
    assert read_metadata(paths["onnx"]) == model_metadata(model) == props


@pytest.mark.parametrize("batch", [1, 7])
def test_tflite_matches_keras(exported, batch):
    model, paths = exported
    x = images(batch, seed=10 + batch)
    got = run_tflite(paths["tflite"], x)
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_tflite_metadata_sidecar(exported):
    model, paths = exported
    sidecar = paths["tflite"].with_name(paths["tflite"].name + ".metadata.json")
    assert json.loads(sidecar.read_text()) == model_metadata(model)
    assert read_metadata(paths["tflite"])["label_names"] == NAMES


def test_saved_model_reload_matches_keras(exported):
    model, paths = exported
    loaded = tf.saved_model.load(str(paths["saved_model"]))
    serving = loaded.signatures["serving_default"]
    for batch in (1, 7):
        x = images(batch, seed=20 + batch)
        got = serving(images=tf.constant(x))["probabilities"].numpy()
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-5)
    info = json.loads((paths["saved_model"] / SAVED_MODEL_METADATA).read_text())
    assert info == read_metadata(paths["saved_model"]) == model_metadata(model)
    assert info["thresholds"] == pytest.approx(THRESHOLDS) and info["label_names"] == NAMES


def test_feature_model_exports_to_onnx(tmp_path):
    keras.utils.set_random_seed(1)
    model = RETDM(4, backbone="mlp", input_dim=7, embed_dim=8, label_hidden_units=8)
    path = export_model(model, tmp_path / "features.onnx")
    features = np.random.default_rng(0).normal(size=(6, 7)).astype("float32")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "features"
    got = session.run(None, {"features": features})[0]
    np.testing.assert_allclose(got, model.predict(features, verbose=0), rtol=0, atol=1e-5)
    info = read_metadata(path)
    assert info["input_dim"] == 7 and info["image_size"] is None
    assert info["thresholds"] == 0.5 and info["label_names"] is None


def test_mixed_precision_exports_float32_outputs(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = tiny_model()
    finally:
        keras.config.set_dtype_policy(previous)
    x = images(4)
    expected = model.predict(x, verbose=0).astype("float32")
    for precision in ("float32", "model"):
        path = export_model(model, tmp_path / f"{precision}.onnx", precision=precision)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_outputs()[0].type == "tensor(float)"
        got = session.run(None, {"images": x})[0]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=5e-3)  # float16 rounding
    # the float32 copy runs in the TFLite interpreter too
    path = export_model(model, tmp_path / "mixed.tflite", format="tflite")
    np.testing.assert_allclose(run_tflite(path, x), expected, atol=5e-3)


def test_benchmark_reports_ratios_for_every_backend(exported):
    model, paths = exported
    result = benchmark_latency(model, list(paths.values()), batch_sizes=(1, 3), repeats=2, warmup=1)
    assert result["batch_sizes"] == [1, 3]
    assert set(result["latency_ms"]) == {"keras", "onnx", "saved_model", "tflite"}
    assert set(result["speedup_vs_keras"]) == {"onnx", "saved_model", "tflite"}
    for backend, times in result["latency_ms"].items():
        assert set(times) == {1, 3} and all(t > 0 for t in times.values()), backend
    latency = result["latency_ms"]
    ratio = latency["keras"][3] / latency["onnx"][3]
    assert result["speedup_vs_keras"]["onnx"][3] == pytest.approx(ratio)
    named = benchmark_latency(model, {"ort": paths["onnx"]}, batch_sizes=(2,), repeats=1)
    assert set(named["speedup_vs_keras"]) == {"ort"}


def test_clear_errors(exported, tmp_path):
    model, _ = exported
    with pytest.raises(ValueError, match="format"):
        export_model(model, tmp_path / "m.pt", format="torch")
    with pytest.raises(ValueError, match=".tflite"):
        export_model(model, tmp_path / "m.lite", format="tflite")
    with pytest.raises(ValueError, match="precision"):
        inference_model(model, precision="float16")
    with pytest.raises(ValueError, match="format"):
        read_metadata(tmp_path / "m.h5")
