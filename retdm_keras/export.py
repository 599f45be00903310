"""Export a trained RETDM to ONNX, TensorFlow SavedModel or TFLite, with its label metadata.

Only the prediction path is exported — ``images → f → classification head → probabilities``;
the label embedder, the reconstruction head and the training state (neighbour index, memory
bank) are training-time machinery and are left out. ``inference_model`` builds that path as a
small functional Keras model, and ``export_model`` hands it to Keras 3's own
``Model.export`` (``"onnx"`` drives tf2onnx, ``"litert"`` the TFLite converter,
``"tf_saved_model"`` an ``ExportArchive``).

The exported graph, in every format:

* input ``"images"``: float32 ``(batch, H, W, 3)``, **raw RGB pixels in [0, 255]** — the
  backbone's preprocessing is inside the graph (``"features"``, float32 ``(batch, F)``, for the
  ``"mlp"`` backbone); the batch dimension is dynamic;
* output ``"probabilities"``: float32 ``(batch, C)``, the sigmoid label probabilities.

Mixed precision: a model with a mixed dtype policy (e.g. ``"mixed_float16"``) is exported by
default as a float32 copy of its prediction path (``precision="float32"``: the weights are
float32 anyway, and float16/bfloat16 graphs do not run everywhere — ONNX Runtime rejects the
bfloat16 graph, the TFLite interpreter the float16 one). ``precision="model"`` keeps the
model's compute dtype inside the graph and only casts the output to float32.

Metadata — what a consumer needs to turn probabilities into labels — is ``model_metadata``:
the label names, the decision thresholds (``model.decision_threshold``: one value or one per
label; a label is predicted when ``probability >= threshold``), the input name, shape and
value range, the image size / feature size, the backbone, and the library versions. It is
stored

* ONNX: in the model's ``metadata_props``, one entry per key, each value JSON text;
* SavedModel: in the SavedModel folder as ``assets/retdm_metadata.json`` (travels with the
  folder);
* TFLite: in a sidecar file ``<path>.metadata.json`` next to ``<path>`` (e.g.
  ``model.tflite.metadata.json``).

``read_metadata(path)`` reads it back from any of the three.

Usage::

    from retdm_keras.export import export_model, read_metadata, benchmark_latency

    onnx_path = export_model(model, "scene.onnx")                    # format="onnx"
    sm_path = export_model(model, "scene_savedmodel", format="saved_model")
    tfl_path = export_model(model, "scene.tflite", format="tflite")
    read_metadata(onnx_path)["label_names"]

    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_path))
    probabilities = session.run(["probabilities"], {"images": images})[0]

    benchmark_latency(model, [onnx_path, tfl_path], batch_sizes=(1, 32))

``benchmark_latency`` times Keras, ONNX Runtime, TFLite (and SavedModel) on the same inputs in
one process and reports each backend's speed-up over Keras.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "FORMATS",
    "benchmark_latency",
    "export_all",
    "export_model",
    "inference_model",
    "model_metadata",
    "read_metadata",
]

FORMATS: tuple[str, ...] = ("onnx", "saved_model", "tflite")
"""Formats understood by ``export_model``."""

OUTPUT_NAME = "probabilities"
SAVED_MODEL_METADATA = os.path.join("assets", "retdm_metadata.json")
"""Where the metadata lives inside an exported SavedModel folder."""
SIDECAR_SUFFIX = ".metadata.json"
"""Suffix of the TFLite metadata sidecar: ``model.tflite`` → ``model.tflite.metadata.json``."""

_KERAS_FORMATS = {"onnx": "onnx", "saved_model": "tf_saved_model", "tflite": "litert"}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _input_name(model: keras.Model) -> str:
    return "features" if model.backbone == "mlp" else "images"


# --------------------------------------------------------------------------- #
# The inference graph
# --------------------------------------------------------------------------- #
def _float32_copy(model: keras.Model) -> keras.Model:
    """The same RETDM built under the float32 policy, with the prediction path's weights."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = type(model).from_config(model.get_config())
    finally:
        keras.config.set_dtype_policy(previous)
    copy.image_embedder.set_weights(model.image_embedder.get_weights())
    copy.classification_head.set_weights(model.classification_head.get_weights())
    copy.label_embedder.set_weights(model.label_embedder.get_weights())  # label-set scores
    if model.baseline_head is not None:
        copy.baseline_head.set_weights(model.baseline_head.get_weights())
    return copy


def inference_model(model: keras.Model, precision: str = "float32") -> keras.Model:
    """A functional model ``inputs → {"probabilities": (batch, C) float32}`` (inference mode).

    It shares the layers (and weights) of ``model``'s prediction path: ``image_embedder`` and
    ``classification_head`` (and ``label_embedder`` when the model mixes in label-set scores,
    ``RETDM(label_set_weight > 0)``; ``baseline_head`` when it mixes in the tuned baseline,
    ``RETDM(baseline_weight > 0)``). With ``precision="float32"`` a model with a mixed dtype
    policy is first copied to float32; ``"model"`` keeps its compute dtype and casts the output.
    """
    if precision not in ("float32", "model"):
        raise ValueError(f"precision must be 'float32' or 'model', got {precision!r}")
    dtypes = {layer.compute_dtype for layer in (model.image_embedder, model.classification_head)}
    if precision == "float32" and dtypes != {"float32"}:
        model = _float32_copy(model)
    name = _input_name(model)
    inputs = keras.Input(model.input_shape_without_batch, name=name, dtype="float32")
    baseline = model.baseline_head is not None and model.baseline_weight > 0
    if baseline and model.backbone != "mlp":  # one backbone pass feeds both
        features = model.image_embedder.backbone_features(inputs, training=False)
        embedding = model.image_embedder.embed_backbone_features(features, training=False)
    else:
        features = inputs
        embedding = model.image_embedder(inputs, training=False)
    if getattr(model, "label_set_weight", 0.0) and model.label_sets:
        # traced inside the graph, so the label sets and g's weights become graph constants
        probabilities = keras.layers.Lambda(
            model.probabilities_from_embedding, name="label_set_mix"
        )(embedding)
    else:
        probabilities = model.classification_head(embedding)
    if baseline:  # the tuned baseline mixed in (RETDM(baseline_weight > 0))
        beta = model.baseline_weight
        probabilities = (1.0 - beta) * probabilities + beta * model.baseline_head(features)
    # a float32 layer autocasts its input: float32 output whatever the model's policy
    probabilities = keras.layers.Activation("linear", dtype="float32", name=OUTPUT_NAME)(
        probabilities
    )
    return keras.Model(inputs, {OUTPUT_NAME: probabilities}, name=f"{model.name}_inference")


def model_metadata(model: keras.Model) -> dict[str, Any]:
    """Everything a consumer of the exported file needs besides the graph (JSON-friendly)."""
    images = model.backbone != "mlp"
    threshold = model.decision_threshold
    return {
        "format_version": 1,
        "library": "retdm-keras",
        "library_version": _version("retdm-keras"),
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "backbone": model.backbone,
        "num_labels": int(model.num_labels),
        "label_names": list(model.label_names) if model.label_names else None,
        "thresholds": list(threshold) if isinstance(threshold, list) else float(threshold),
        "decision_rule": "label j is predicted when probabilities[:, j] >= thresholds[j]",
        "input_name": _input_name(model),
        "input_shape": [None, *model.input_shape_without_batch],
        "input_dtype": "float32",
        "input_range": "raw RGB pixels in [0, 255]" if images else "feature vectors",
        "image_size": list(model.image_embedder.image_size) if images else None,
        "input_dim": None if images else int(model.image_embedder.input_dim),
        "output_name": OUTPUT_NAME,
        "output_shape": [None, int(model.num_labels)],
    }


# --------------------------------------------------------------------------- #
# Export
# --------------------------------------------------------------------------- #
def _finish_onnx(path: Path, metadata: dict[str, Any] | None) -> None:
    """Name the dynamic batch dimension ``"batch"`` and add the metadata to an ONNX file."""
    import onnx

    proto = onnx.load(str(path))
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    if metadata is not None:
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=json.dumps(value))
        proto.doc_string = "RETDM multi-label classifier: images -> label probabilities"
    onnx.save(proto, str(path))


def export_model(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "onnx",
    *,
    metadata: bool = True,
    precision: str = "float32",
    opset: int | None = None,
) -> Path:
    """Export ``model``'s prediction path (inputs → probabilities) for serving.

    Args:
        model: a ``RETDM``.
        path: the ``.onnx`` file, the SavedModel folder, or the ``.tflite`` file to write.
        format: ``"onnx"``, ``"saved_model"`` or ``"tflite"``.
        metadata: store ``model_metadata(model)`` with the export (see the module docstring).
        precision: ``"float32"`` (default) or ``"model"``, for mixed-precision models (see
            ``inference_model``).
        opset: ONNX opset version (default: tf2onnx's).

    Returns:
        The path written.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if format == "tflite" and path.suffix != ".tflite":
        raise ValueError(f"a TFLite file name must end with '.tflite', got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = inference_model(model, precision=precision)
    kwargs = {"opset_version": opset} if format == "onnx" and opset is not None else {}
    (inputs,) = graph.inputs
    signature = [tf.TensorSpec(inputs.shape, tf.float32, name=inputs.name)]  # dynamic batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's numpy-2 shim
        graph.export(
            str(path),
            format=_KERAS_FORMATS[format],
            verbose=False,
            input_signature=signature,
            **kwargs,
        )
    info = model_metadata(model) if metadata else None
    if format == "onnx":
        _finish_onnx(path, info)
    elif info is not None:
        target = path / SAVED_MODEL_METADATA if format == "saved_model" else _sidecar(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(info, indent=2) + "\n")
    return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _format_of(path: Path) -> str:
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "saved_model"
    if path.suffix in (".onnx", ".tflite"):
        return path.suffix[1:]
    raise ValueError(f"cannot tell the format of {path}: expected .onnx, .tflite or a SavedModel")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored by ``export_model`` with an ``.onnx``, ``.tflite`` or SavedModel."""
    path = Path(path)
    fmt = _format_of(path)
    if fmt == "onnx":
        import onnx

        props = onnx.load(str(path), load_external_data=False).metadata_props
        return {p.key: json.loads(p.value) for p in props}
    source = path / SAVED_MODEL_METADATA if fmt == "saved_model" else _sidecar(path)
    if not source.exists():
        raise FileNotFoundError(f"no metadata for {path}: {source} does not exist")
    return json.loads(source.read_text())


# --------------------------------------------------------------------------- #
# Latency benchmark
# --------------------------------------------------------------------------- #
def _runner(fmt: str, path: Path):
    """``prepare(batch_size)`` → ``run(x)`` for one exported file."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch_size: lambda x: session.run(None, {name: x})[0]
    if fmt == "saved_model":
        loaded = tf.saved_model.load(str(path))  # keep it alive: it owns the variables
        return lambda batch_size: lambda x: loaded.serve(tf.constant(x))[OUTPUT_NAME].numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=str(path))

    def prepare(batch_size: int):
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], [batch_size, *inp["shape"][1:]])
        interpreter.allocate_tensors()
        out = interpreter.get_output_details()[0]["index"]

        def run(x):
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(out)

        return run

    return prepare


def _median_ms(run, x: np.ndarray, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def benchmark_latency(
    model: keras.Model,
    exported_paths: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    batch_sizes: Sequence[int] = (1, 32),
    repeats: int = 20,
    *,
    warmup: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Median latency of Keras and each exported file on the same random inputs.

    Keras runs ``model.predict_on_batch`` (its compiled predict step); ONNX files run in ONNX
    Runtime (CPU provider), ``.tflite`` files in ``tf.lite.Interpreter``, SavedModels through
    their ``serve`` endpoint — all in this process, with each runtime's default threading.

    Args:
        model: the Keras ``RETDM`` the files were exported from.
        exported_paths: paths (the format is read from the name), or ``{name: path}``.
        batch_sizes: batch sizes to time.
        repeats: timed runs per backend and batch size (after ``warmup`` untimed ones).

    Returns:
        ``{"batch_sizes": [...], "repeats": n, "latency_ms": {backend: {batch: ms}},
        "speedup_vs_keras": {backend: {batch: keras_ms / backend_ms}}}`` — the backends are
        ``"keras"`` and the names (default: the formats) of the exported files; a speed-up
        above 1 means faster than Keras.
    """
    if isinstance(exported_paths, Mapping):
        named = {str(k): Path(v) for k, v in exported_paths.items()}
    else:
        named = {}
        for p in map(Path, exported_paths):
            name = _format_of(p)
            named[name if name not in named else f"{name}:{p.name}"] = p
    runners = {name: _runner(_format_of(p), p) for name, p in named.items()}
    rng = np.random.default_rng(seed)
    high = 255.0 if model.backbone != "mlp" else 1.0
    latency: dict[str, dict[int, float]] = {"keras": {}, **{name: {} for name in runners}}
    for batch_size in batch_sizes:
        shape = (int(batch_size), *model.input_shape_without_batch)
        x = rng.uniform(0.0, high, shape).astype("float32")
        latency["keras"][batch_size] = _median_ms(model.predict_on_batch, x, repeats, warmup)
        for name, prepare in runners.items():
            latency[name][batch_size] = _median_ms(prepare(batch_size), x, repeats, warmup)
    speedup = {
        name: {b: latency["keras"][b] / ms for b, ms in times.items()}
        for name, times in latency.items()
        if name != "keras"
    }
    return {
        "batch_sizes": [int(b) for b in batch_sizes],
        "repeats": int(repeats),
        "latency_ms": latency,
        "speedup_vs_keras": speedup,
    }


def export_all(
    model: keras.Model,
    folder: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    *,
    stem: str = "model",
    **kwargs: Any,
) -> dict[str, Path]:
    """Export ``model`` to several formats in ``folder``: ``{format: path}``.

    The files are ``<stem>.onnx``, ``<stem>_saved_model/`` and ``<stem>.tflite``; ``kwargs``
    go to ``export_model``.
    """
    folder = Path(folder)
    names = {
        "onnx": f"{stem}.onnx",
        "saved_model": f"{stem}_saved_model",
        "tflite": f"{stem}.tflite",
    }
    return {fmt: export_model(model, folder / names[fmt], fmt, **kwargs) for fmt in formats}
