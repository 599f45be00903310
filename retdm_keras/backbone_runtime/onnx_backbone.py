"""An ``ImageEmbedder``'s backbone converted to ONNX (tf2onnx) and run by ONNX Runtime."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import warnings
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.backbone_runtime.store import BackboneRuntimeWarning

__all__ = [
    "OPSET",
    "PARITY_TOLERANCE",
    "BackboneRuntimeWarning",
    "OnnxBackbone",
    "convert_backbone",
    "converter_versions",
    "relative_difference",
]

OPSET = 17
"""ONNX opset of the converted backbones."""

PARITY_TOLERANCE = 1e-4
"""Largest :func:`relative_difference` between ONNX Runtime's and Keras' features of the
probe batch for a converted backbone to be used."""

INPUT_NAME, OUTPUT_NAME = "images", "features"


def converter_versions() -> dict[str, str | None]:
    """Versions of the packages a conversion depends on (part of a stored file's key)."""

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "tensorflow": tf.__version__,
        "tf2onnx": version("tf2onnx"),
        "onnxruntime": version("onnxruntime"),
        "opset": str(OPSET),
    }


def relative_difference(features: np.ndarray, reference: np.ndarray) -> float:
    """``max |features - reference| / max |reference|``: the largest difference relative to
    the scale of the reference features (elementwise ratios mean nothing for pooled ReLU
    features at or near 0)."""
    features = np.asarray(features, np.float64)
    reference = np.asarray(reference, np.float64)
    if features.shape != reference.shape:
        raise ValueError(f"shapes differ: {features.shape} vs {reference.shape}")
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    difference = float(np.max(np.abs(features - reference))) if reference.size else 0.0
    return difference / max(scale, 1e-12)


def convert_backbone(embedder) -> bytes:
    """The serialized ONNX model of ``embedder.backbone_features`` (inference mode).

    Input ``"images"``: float32 ``(batch, H, W, 3)`` raw pixels in [0, 255] (the backbone's
    preprocessing is inside); output ``"features"``: float32 ``(batch, D)``.

    Raises:
        ValueError: an ``"mlp"`` embedder.
        Exception: whatever tf2onnx raises for a graph it cannot convert.
    """
    if embedder.backbone_name == "mlp":
        raise ValueError("only image backbones are converted")
    import tf2onnx

    spec = (tf.TensorSpec((None, *embedder.image_size, 3), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def features(images):
        pooled = embedder.backbone_features(images, training=False)
        return {OUTPUT_NAME: tf.cast(pooled, tf.float32)}

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's numpy and TensorFlow deprecations
            proto, _ = tf2onnx.convert.from_function(features, input_signature=spec, opset=OPSET)
    finally:
        logger.setLevel(level)
    return proto.SerializeToString()


def _available_cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class OnnxBackbone:
    """ONNX Runtime running a converted backbone: ``images (B, H, W, 3) -> (B, D)``.

    Args:
        model: the serialized ONNX model (:func:`convert_backbone`).
        threads: intra-op threads; default: the cores this process may use.
        chunk: larger batches run in chunks of this many images (default 16): smaller
            activations stay in the CPU caches.

    The session's worker threads do not spin while waiting, so that they leave the cores
    to the ``tf.data`` threads that decode and augment the next batch. The measurements
    behind both choices are in ``docs/method.md``, "A fast backbone runtime".
    """

    def __init__(self, model: bytes, threads: int | None = None, chunk: int = 16):
        self.chunk = max(1, int(chunk))
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or _available_cores())
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        (first,) = self.session.get_inputs()
        self.input_name = first.name
        self.image_shape = tuple(first.shape[1:])

    def __call__(self, images: Any) -> np.ndarray:
        """Pooled features, float32 ``(B, D)``, of raw images ``(B, H, W, 3)``."""
        array = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
        if array.ndim != 4 or tuple(array.shape[1:]) != self.image_shape:
            raise ValueError(
                f"images must be (batch, {', '.join(map(str, self.image_shape))}), got "
                f"{array.shape}"
            )
        if len(array) <= self.chunk:
            return self.session.run(None, {self.input_name: array})[0]
        parts = [
            self.session.run(None, {self.input_name: array[start : start + self.chunk]})[0]
            for start in range(0, len(array), self.chunk)
        ]
        return np.concatenate(parts)


def probe_images(image_size: tuple[int, int], count: int = 2) -> np.ndarray:
    """A fixed batch of random images (pixels in [0, 255]) for the parity check."""
    rng = np.random.default_rng(0)
    return (rng.random((count, *image_size, 3)) * 255.0).astype(np.float32)
