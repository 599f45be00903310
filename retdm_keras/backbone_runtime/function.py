"""``backbone_function``: a backbone's pooled features as numpy, through the chosen runtime."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.backbone_runtime.onnx_backbone import (
    PARITY_TOLERANCE,
    OnnxBackbone,
    convert_backbone,
    converter_versions,
    probe_images,
    relative_difference,
)
from retdm_keras.backbone_runtime.policy import resolve_backbone_runtime
from retdm_keras.backbone_runtime.store import (
    STORE_VERSION,
    BackboneRuntimeWarning,
    ConvertedBackboneStore,
    backbone_weights_sha256,
    default_store_dir,
)

logger = logging.getLogger(__name__)


@dataclass
class _Converted:
    """An embedder's ONNX backbone (None: conversion failed) and the weights it was made from
    (their bits, flattened: see :func:`_weight_bits`)."""

    bits: tf.Tensor
    backbone: OnnxBackbone | None


_KERAS_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CONVERTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WEIGHT_BITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weight_bits(embedder) -> tf.Tensor:
    """The bits of every backbone variable as one int32 vector, computed in a compiled
    function: comparing it with the stored one tells exactly whether the weights changed, in
    a few milliseconds (reading the variables into numpy took 11 ms for MobileNetV2)."""
    function = _WEIGHT_BITS.get(embedder)
    if function is None:
        variables = list(embedder.backbone.weights)  # variables, not the layer: no cycle

        @tf.function
        def function():
            parts = [tf.reshape(tf.cast(v.value, tf.float32), [-1]) for v in variables]
            return tf.bitcast(tf.concat(parts, axis=0), tf.int32)

        _WEIGHT_BITS[embedder] = function
    return function()


def _same_bits(stored: tf.Tensor, current: tf.Tensor) -> bool:
    return stored.shape == current.shape and bool(tf.reduce_all(tf.equal(stored, current)))


class BackboneFunction:
    """``images (B, H, W, 3) -> float32 features (B, D)`` as numpy.

    Attributes:
        runtime: ``"onnx"`` (ONNX Runtime) or ``"keras"`` (a compiled Keras function).
    """

    def __init__(self, runtime: str, run: Callable[[Any], np.ndarray]):
        self.runtime = runtime
        self._run = run

    def __call__(self, images) -> np.ndarray:
        return self._run(images)

    def __repr__(self) -> str:
        return f"BackboneFunction(runtime={self.runtime!r})"


def _keras_function(embedder) -> Callable[[Any], np.ndarray]:
    """The compiled ``backbone_features`` of ``embedder`` (one per embedder: no retracing;
    it holds the embedder weakly, so the cache never keeps an embedder alive)."""
    function = _KERAS_FUNCTIONS.get(embedder)
    if function is None:
        layer = weakref.ref(embedder)

        @tf.function(reduce_retracing=True)
        def compiled(images):
            return tf.cast(layer().backbone_features(images, training=False), tf.float32)

        def function(images):
            return compiled(images).numpy()

        _KERAS_FUNCTIONS[embedder] = function
    return function


def _identity(embedder, values: list[np.ndarray]) -> dict[str, Any]:
    return {
        "version": STORE_VERSION,
        "backbone": embedder.backbone_name,
        "width": embedder.width,
        "image_size": list(embedder.image_size),
        "weights_sha256": backbone_weights_sha256(embedder, values),
        "converter": converter_versions(),
    }


def _fall_back(embedder, bits, reason: str) -> None:
    warnings.warn(
        f"the {embedder.backbone_name} backbone runs on Keras, not ONNX Runtime: {reason}",
        BackboneRuntimeWarning,
        stacklevel=4,
    )
    _CONVERTED[embedder] = _Converted(bits, None)


def _converted_backbone(embedder, store_dir, verbose: int) -> OnnxBackbone | None:
    """ONNX Runtime for ``embedder``'s current weights: from memory, from the store, or
    converted now (and stored); None where conversion failed (warned once per weights)."""
    bits = _weight_bits(embedder)
    known = _CONVERTED.get(embedder)
    if known is not None and _same_bits(known.bits, bits):
        return known.backbone
    values = [np.asarray(variable.numpy()) for variable in embedder.backbone.weights]
    identity = _identity(embedder, values)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    store = None if store_dir is False else ConvertedBackboneStore(store_dir or default_store_dir())
    stored = store.load(key) if store is not None else None
    if stored is not None:
        try:
            backbone = OnnxBackbone(stored[0])
        except Exception as err:  # a file that hashes right but does not load
            warnings.warn(
                f"converted backbone {store.paths(key)[0]} does not load ({err}); converting "
                "the backbone again",
                BackboneRuntimeWarning,
                stacklevel=3,
            )
        else:
            _CONVERTED[embedder] = _Converted(bits, backbone)
            return backbone
    started = time.perf_counter()
    try:
        model = convert_backbone(embedder)
        backbone = OnnxBackbone(model)
        probe = probe_images(embedder.image_size)
        reference = tf.cast(embedder.backbone_features(probe, training=False), tf.float32)
        parity = relative_difference(backbone(probe), reference.numpy())
    except Exception as err:  # tf2onnx or ONNX Runtime cannot handle this graph
        _fall_back(embedder, bits, f"it could not be converted ({type(err).__name__}: {err})")
        return None
    if not parity <= PARITY_TOLERANCE:
        _fall_back(
            embedder,
            bits,
            f"its converted features differ from Keras' by {parity:.1e} of their scale "
            f"(tolerance {PARITY_TOLERANCE:.0e})",
        )
        return None
    if verbose:
        print(
            f"RETDM backbone runtime: {embedder.backbone_name} converted to ONNX in "
            f"{time.perf_counter() - started:.1f} s (parity {parity:.1e}; once per weights)"
        )
    if store is not None:
        try:
            store.save(key, model, {**identity, "parity": parity})
        except OSError as err:  # a read-only cache: keep the conversion for this process
            logger.info("converted backbone not stored in %s: %s", store.directory, err)
    _CONVERTED[embedder] = _Converted(bits, backbone)
    return backbone


def backbone_function(
    embedder,
    runtime: str | None = None,
    *,
    store_dir: str | os.PathLike[str] | bool | None = None,
    verbose: int = 0,
) -> BackboneFunction:
    """``embedder.backbone_features`` in inference mode, as a numpy function.

    Args:
        embedder: an image ``ImageEmbedder``.
        runtime: one of ``RUNTIMES``; None: ``default_backbone_runtime()``. See
            :func:`~retdm_keras.backbone_runtime.resolve_backbone_runtime`.
        store_dir: folder of converted backbones; None: :func:`default_store_dir`;
            False: keep conversions in memory only.
        verbose: 1 prints a line when a backbone is converted.

    Returns:
        A :class:`BackboneFunction`; its ``runtime`` says which one runs (``"keras"`` after
        a fallback, which warns once with a ``BackboneRuntimeWarning``).
    """
    chosen, reason = resolve_backbone_runtime(embedder, runtime)
    if reason is not None:
        warnings.warn(
            f"backbone runtime 'onnx' asked for, Keras used: {reason}",
            BackboneRuntimeWarning,
            stacklevel=2,
        )
    if chosen == "onnx":
        backbone = _converted_backbone(embedder, store_dir, verbose)
        if backbone is not None:
            return BackboneFunction("onnx", backbone)
    return BackboneFunction("keras", _keras_function(embedder))


def clear_backbone_functions() -> None:
    """Forget the converted backbones and compiled functions held in memory (the stored
    files stay)."""
    _KERAS_FUNCTIONS.clear()
    _CONVERTED.clear()
    _WEIGHT_BITS.clear()
