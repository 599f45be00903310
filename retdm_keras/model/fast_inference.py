"""``predict`` and ``evaluate`` on raw images with the backbone in a fast runtime.

A pretrained image model (ImageNet, a zoo entry, frozen-backbone training) predicts on raw
images through :func:`retdm_keras.backbone_runtime.backbone_function`: the backbone's pooled
features come from ONNX Runtime where it applies (a CPU, float32; see
``retdm_keras.backbone_runtime``), and the rest of the model — dropout, projection, heads,
label-set retrieval — runs in Keras on those features, exactly as frozen-backbone training
does. The features equal Keras' within ``PARITY_TOLERANCE`` of their scale.

It applies to inputs Keras would batch itself (arrays, tensors, ``{"images": ...}`` dicts)
and to ``tf.data`` datasets of image batches, without ``steps``, ``callbacks`` or sample
weights; anything else, a backbone that is not pretrained, and ``model.backbone_runtime =
"keras"`` take Keras' own ``predict`` / ``evaluate`` on the whole graph.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from retdm_keras.backbone_runtime import (
    BackboneFunction,
    backbone_function,
    check_runtime,
    default_backbone_runtime,
)
from retdm_keras.model.forward import BACKBONE_FEATURES

_HEAD_BATCH = 256  # batches of pooled features through the heads (cheap; any size gives the same)

Batches = Callable[[], Iterator[tuple[Any, Any, Any]]]

_HEAD_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class FastInferenceMixin:
    """``RETDM``'s ``predict`` / ``evaluate`` with the backbone in a fast runtime."""

    _backbone_runtime: str | None = None

    @property
    def backbone_runtime(self) -> str:
        """Which runtime runs the backbone for frozen-feature extraction and for predictions
        on raw images: ``"auto"``, ``"onnx"`` or ``"keras"`` (see
        ``retdm_keras.backbone_runtime``). Default: ``$RETDM_BACKBONE_RUNTIME``, else
        ``"auto"``. Not saved with the model."""
        return self._backbone_runtime or default_backbone_runtime()

    @backbone_runtime.setter
    def backbone_runtime(self, value: str | None) -> None:
        self._backbone_runtime = None if value is None else check_runtime(value)

    # ------------------------------------------------------------------ inputs
    def _image_batches(self, x, y, batch_size: int | None) -> Batches | None:
        """A way to iterate ``(images, index or None, labels or None)`` batches of ``x``, or
        None where the fast path does not apply to ``x``."""
        shape = (*self.image_embedder.image_size, 3)
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            inputs = spec[0] if isinstance(spec, tuple) else spec
            if y is not None or not _images_spec(inputs, shape):
                return None

            def dataset_batches():
                for element in x:
                    if isinstance(element, tuple):
                        inputs, labels = element[0], element[1] if len(element) > 1 else None
                    else:
                        inputs, labels = element, None
                    images, index = _images_and_index(inputs)
                    yield images, index, labels

            return dataset_batches
        images, index = _images_and_index(x)
        if not _is_array(images) or tuple(images.shape[1:]) != shape:
            return None
        if any(a is not None and not _is_array(a) for a in (index, y)):
            return None
        size = int(batch_size or 32)

        def array_batches():
            for start in range(0, len(images), size):
                part = slice(start, start + size)
                yield (
                    images[part],
                    None if index is None else index[part],
                    None if y is None else y[part],
                )

        return array_batches

    def _fast_backbone(self, verbose) -> BackboneFunction | None:
        """The ONNX Runtime backbone where predictions should use it, else None."""
        embedder = self.image_embedder
        if self.backbone == "mlp" or not (embedder.pretrained or self.freeze_backbone):
            return None
        function = backbone_function(
            embedder, self.backbone_runtime, verbose=int(_verbosity(verbose) > 0)
        )
        return function if function.runtime == "onnx" else None

    def _backbone_pass(self, batches: Batches, function, verbose) -> dict[str, Any] | None:
        """Pooled features of every batch, in order, with the indices, labels and the first
        batch's size (None for no batches)."""
        features, indices, labels = [], [], []
        bar = keras.utils.Progbar(None, verbose=_verbosity(verbose), unit_name="batch")
        for step, (images, index, y) in enumerate(batches(), start=1):
            features.append(function(images))
            indices.append(None if index is None else np.asarray(index))
            labels.append(None if y is None else np.asarray(y, np.float32))
            bar.update(step)
        if not features:
            return None
        bar.update(len(features), finalize=True)
        return {
            "features": np.concatenate(features),
            "index": None if indices[0] is None else np.concatenate(indices),
            "labels": None if labels[0] is None else np.concatenate(labels),
            "batch_size": len(features[0]),
        }

    def _heads_on_features(self, features: np.ndarray) -> np.ndarray:
        """Probabilities from pooled backbone features: the model's ``call`` in inference
        mode, compiled once per prediction setting (``keras.Model.predict`` on the features
        cost 54 ms a call for one image, the compiled call 1 ms)."""
        state = (
            id(self._label_set_matrix),
            self.label_set_weight,
            self.lam,
            self.label_set_temperature,
            self.distance,
        )
        cached = _HEAD_FUNCTIONS.get(self)
        if cached is None or cached[0] != state:

            @tf.function(reduce_retracing=True)
            def heads(h):
                return self({BACKBONE_FEATURES: h}, training=False)

            cached = _HEAD_FUNCTIONS[self] = (state, heads)
        heads = cached[1]
        parts = [
            np.asarray(heads(features[start : start + _HEAD_BATCH]))
            for start in range(0, len(features), _HEAD_BATCH)
        ]
        return np.concatenate(parts)

    # ------------------------------------------------------------------ Keras API
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """``keras.Model.predict``; for raw images of a pretrained backbone, the backbone runs
        in ONNX Runtime where it applies (see ``retdm_keras.model.fast_inference``)."""
        batches = None
        if steps is None and callbacks is None:
            batches = self._image_batches(x, None, batch_size)
        function = self._fast_backbone(verbose) if batches is not None else None
        passed = self._backbone_pass(batches, function, verbose) if function else None
        if passed is None:
            return super().predict(
                x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
            )
        return self._heads_on_features(passed["features"])

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
        **kwargs,
    ):
        """``keras.Model.evaluate``; for raw images of a pretrained backbone, the backbone runs
        in ONNX Runtime where it applies (the same batches then go through the rest of the
        model, so the losses and metrics are those of the whole graph)."""
        batches = None
        if sample_weight is None and steps is None and callbacks is None and not kwargs:
            batches = self._image_batches(x, y, batch_size)
        function = self._fast_backbone(verbose) if batches is not None else None
        passed = self._backbone_pass(batches, function, verbose) if function else None
        if passed is None or passed["labels"] is None:
            return super().evaluate(
                x,
                y,
                batch_size=batch_size,
                verbose=verbose,
                sample_weight=sample_weight,
                steps=steps,
                callbacks=callbacks,
                return_dict=return_dict,
                **kwargs,
            )
        inputs = {BACKBONE_FEATURES: passed["features"]}
        if passed["index"] is not None:
            inputs["index"] = passed["index"]
        return super().evaluate(
            inputs,
            passed["labels"],
            batch_size=passed["batch_size"],
            verbose=verbose,
            return_dict=return_dict,
        )


def _verbosity(verbose) -> int:
    return 1 if verbose == "auto" else int(verbose)


def _is_array(value) -> bool:
    return isinstance(value, (np.ndarray, tf.Tensor)) and len(value.shape) >= 1


def _images_and_index(inputs) -> tuple[Any, Any]:
    """The images and the sample index of a batch's inputs (``{"images", "index"}`` or a
    plain image array); ``(None, None)`` for other inputs."""
    if isinstance(inputs, dict):
        if set(inputs) - {"images", "index"}:
            return None, None
        return inputs.get("images"), inputs.get("index")
    return inputs, None


def _images_spec(spec, shape: tuple[int, ...]) -> bool:
    """Whether a dataset's input spec is image batches of ``shape`` (optionally with an
    ``index``)."""
    if isinstance(spec, dict):
        if set(spec) - {"images", "index"}:
            return False
        spec = spec.get("images")
    return (
        isinstance(spec, tf.TensorSpec) and spec.shape.rank == 4 and tuple(spec.shape[1:]) == shape
    )
