"""Which runtime runs a fixed image backbone: ONNX Runtime where it is faster, else Keras."""

from __future__ import annotations

import importlib.util
import os

import keras
import tensorflow as tf

RUNTIMES = ("auto", "onnx", "keras")
"""``"auto"``: ONNX Runtime where it applies (CPU, float32, no strategy), else Keras;
``"onnx"``: ONNX Runtime, with a warning where it cannot be used; ``"keras"``: Keras."""

ENVIRONMENT_VARIABLE = "RETDM_BACKBONE_RUNTIME"
"""Sets the process-wide default runtime (one of :data:`RUNTIMES`; unset: ``"auto"``)."""


def check_runtime(value: str) -> str:
    """``value`` if it is one of :data:`RUNTIMES`, else a ``ValueError`` naming them."""
    if value not in RUNTIMES:
        raise ValueError(f"backbone runtime must be one of {RUNTIMES}, got {value!r}")
    return value


def default_backbone_runtime() -> str:
    """``$RETDM_BACKBONE_RUNTIME``, or ``"auto"`` when it is unset or empty.

    Raises:
        ValueError: the variable holds something other than one of :data:`RUNTIMES`.
    """
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={value!r}: expected one of {', '.join(RUNTIMES)}")
    return value


def _onnx_unavailable(embedder, *, explicit: bool) -> str | None:
    """Why ONNX Runtime cannot (or, under ``"auto"``, should not) run ``embedder``'s
    backbone, or None."""
    if embedder.backbone_name == "mlp":
        return "feature vectors ('mlp') have no image backbone to convert"
    if keras.backend.backend() != "tensorflow":
        return f"the Keras backend is {keras.backend.backend()!r}, not TensorFlow"
    if embedder.compute_dtype != "float32":
        return f"the backbone computes in {embedder.compute_dtype}, not float32"
    if tf.distribute.has_strategy():
        return "a tf.distribute strategy is in scope"
    if not explicit and tf.config.list_logical_devices("GPU"):
        return "a GPU is visible (Keras runs the backbone there)"
    for module in ("onnxruntime", "tf2onnx"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


def resolve_backbone_runtime(embedder, requested: str | None = None) -> tuple[str, str | None]:
    """``(runtime, reason)``: ``"onnx"`` or ``"keras"`` for ``embedder``'s backbone.

    Args:
        embedder: an ``ImageEmbedder``.
        requested: one of :data:`RUNTIMES`; None: :func:`default_backbone_runtime`.

    Returns:
        ``("onnx", None)``, or ``("keras", reason)`` where ``reason`` says why ONNX Runtime
        was not used when it was asked for explicitly (``"onnx"``), else None.
    """
    requested = default_backbone_runtime() if requested is None else check_runtime(requested)
    if requested == "keras":
        return "keras", None
    reason = _onnx_unavailable(embedder, explicit=requested == "onnx")
    if reason is None:
        return "onnx", None
    return "keras", reason if requested == "onnx" else None
