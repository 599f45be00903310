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
from dataclasses import dataclass
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

_HEAD_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SETTINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class FastInferenceMixin:
    """``RETDM``'s ``predict`` / ``evaluate`` with the backbone in a fast runtime."""

    _backbone_runtime: str | None = None
    _fitting: bool = False

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
    def _image_batches(self, x, y, batch_size: int | None) -> ImageBatches | None:
        """How to iterate ``(images, index or None, labels or None)`` batches of ``x``, or
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

            count = int(x.cardinality())
            return ImageBatches(
                dataset_batches,
                has_labels=isinstance(spec, tuple) and len(spec) > 1,
                has_index=isinstance(inputs, dict) and "index" in inputs,
                count=count if count >= 0 else None,
            )
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

        return ImageBatches(
            array_batches,
            has_labels=y is not None,
            has_index=index is not None,
            count=-(-len(images) // size),
        )

    # ------------------------------------------------------------------ compiled parts
    def _prediction_settings(self) -> tuple:
        """What a compiled prediction bakes in besides the weights (the label-set matrix is
        held, so its identity cannot be reused by another array)."""
        return (
            self._label_set_matrix,
            self.label_set_weight,
            self.lam,
            self.label_set_temperature,
            self.distance,
            self.embedding_norm,
            self.baseline_weight,
            self.baseline_head,
        )

    def _refresh_compiled_predictions(self) -> None:
        """Drop the compiled predict / test steps and heads when a prediction setting changed
        since they were traced (Keras' own compiled steps would keep the old values). Called
        where each is made: ``make_predict_function``, ``make_test_function`` and the fast
        ``predict``'s heads."""
        settings = self._prediction_settings()
        last = _SETTINGS.get(self)
        if last is not None and last[0] is settings[0] and last[1:] == settings[1:]:
            return
        self.predict_function = self.test_function = None
        _HEAD_FUNCTIONS.pop(self, None)
        _SETTINGS[self] = settings

    def _head_function(self) -> Callable[[np.ndarray], Any]:
        """The model's ``call`` in inference mode on pooled backbone features, compiled
        (``keras.Model.predict`` on the features cost 54 ms a call for one image, this 1 ms).
        The function holds the model weakly, so the cache never keeps a model alive."""
        heads = _HEAD_FUNCTIONS.get(self)
        if heads is None:
            model = weakref.ref(self)

            @tf.function(reduce_retracing=True)
            def heads(features):
                return model()({BACKBONE_FEATURES: features}, training=False)

            _HEAD_FUNCTIONS[self] = heads
        return heads

    def _fast_backbone(self, verbose) -> BackboneFunction | None:
        """The ONNX Runtime backbone where predictions on images should use it, else None:
        a pretrained (or frozen) image backbone, not being fine-tuned by a running ``fit``
        (its weights change every step), outside any ``tf.distribute`` strategy."""
        embedder = self.image_embedder
        if self.backbone == "mlp" or not (embedder.pretrained or self.freeze_backbone):
            return None
        if self._fitting and embedder.backbone.trainable:
            return None
        if tf.distribute.has_strategy() or (
            self.distribute_strategy is not tf.distribute.get_strategy()
        ):
            return None
        function = backbone_function(
            embedder, self.backbone_runtime, verbose=int(_verbosity(verbose) > 0)
        )
        return function if function.runtime == "onnx" else None

    # ------------------------------------------------------------------ Keras API
    def make_predict_function(self, force=False):
        """Keras' compiled predict step, traced again when a prediction setting changed
        (``predict``, ``predict_on_batch``)."""
        self._refresh_compiled_predictions()
        return super().make_predict_function(force)

    def make_test_function(self, force=False):
        """Keras' compiled test step, traced again when a prediction setting changed
        (``evaluate``, ``test_on_batch``, validation in ``fit``)."""
        self._refresh_compiled_predictions()
        return super().make_test_function(force)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit`` (predictions from callbacks during it skip the fast backbone
        while the backbone trains)."""
        self._fitting = True
        try:
            return super().fit(*args, **kwargs)
        finally:
            self._fitting = False

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """``keras.Model.predict``; for raw images of a pretrained backbone, the backbone runs
        in ONNX Runtime where it applies (see ``retdm_keras.model.fast_inference``)."""
        self._refresh_compiled_predictions()
        batches = None
        if steps is None and callbacks is None:
            batches = self._image_batches(x, None, batch_size)
        function = self._fast_backbone(verbose) if batches is not None else None
        if function is not None:
            heads = self._head_function()
            outputs = []
            bar = keras.utils.Progbar(None, verbose=_verbosity(verbose), unit_name="batch")
            for step, (images, _, _) in enumerate(batches.iterate(), start=1):
                outputs.append(np.asarray(heads(function(images))))
                bar.update(step)
            if outputs:
                bar.update(len(outputs), finalize=True)
                return np.concatenate(outputs)
        return super().predict(
            x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
        )

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
        in ONNX Runtime where it applies. The batches keep their boundaries and go through
        the rest of the model one by one, so the losses and metrics are those of the whole
        graph."""
        batches = None
        if sample_weight is None and steps is None and callbacks is None and not kwargs:
            batches = self._image_batches(x, y, batch_size)
        if batches is not None and not batches.has_labels:
            raise ValueError(
                "evaluate needs labels: pass y=, or a dataset of (inputs, labels) batches"
            )
        # a known number of batches: Keras' evaluate of a dataset of unknown length reports
        # wrong means after its "ran out of data" warning (measured here on Keras 3.15)
        usable = (
            batches is not None
            and batches.has_labels
            and batches.count is not None
            and self.compiled
        )
        function = self._fast_backbone(verbose) if usable else None
        if function is None:
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
        return super().evaluate(
            self._feature_dataset(batches, function), verbose=verbose, return_dict=return_dict
        )

    def _feature_dataset(self, batches: ImageBatches, function) -> tf.data.Dataset:
        """The batches with their images replaced by pooled features, computed as Keras
        asks for them."""
        dim, labels = self.image_embedder.feature_dim, self.num_labels
        inputs = {BACKBONE_FEATURES: tf.TensorSpec((None, dim), tf.float32)}
        if batches.has_index:
            inputs["index"] = tf.TensorSpec((None,), tf.int64)

        def generate():
            for images, index, y in batches.iterate():
                x = {BACKBONE_FEATURES: function(images)}
                if batches.has_index:
                    x["index"] = np.asarray(index, np.int64)
                yield x, np.asarray(y, np.float32)

        signature = (inputs, tf.TensorSpec((None, labels), tf.float32))
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(batches.count))


@dataclass
class ImageBatches:
    """A way to iterate the ``(images, index or None, labels or None)`` batches of an input,
    and whether they carry labels and sample indices."""

    iterate: Callable[[], Iterator[tuple[Any, Any, Any]]]
    has_labels: bool
    has_index: bool
    count: int | None  # the number of batches, where known


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
