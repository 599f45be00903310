"""Pooled backbone features of every sample of a dataset, one or several views each."""

from __future__ import annotations

import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from retdm_keras.backbone_runtime import backbone_function
from retdm_keras.model import RETDM

_MAX_PASS_FACTOR = 3  # passes over a dataset that drops samples: at most 3·V

_RUNTIME_NAMES = {"onnx": "ONNX Runtime", "keras": "Keras"}


def _num_batches(dataset: tf.data.Dataset) -> int | None:
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else None


def _split_batch(batch) -> tuple[Any, Any, Any]:
    x, y = batch[0], batch[1]
    kind, images, index = RETDM._split_inputs(x)
    if kind != "images":
        raise ValueError(f"frozen-backbone extraction needs images, got {kind!r} inputs")
    return images, index, y


def extract_features(
    model: RETDM,
    dataset: tf.data.Dataset,
    *,
    views: int | None = None,
    verbose: int = 1,
    description: str = "features",
    runtime: str | None = None,
    store_dir: str | os.PathLike[str] | bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features of every sample of ``dataset`` (batches ``(x, y)``).

    Args:
        model: the ``RETDM`` whose ``ImageEmbedder.backbone_features`` is run (inference
            mode).
        dataset: batches ``({"images", "index"}, labels)``, or plain ``(images, labels)``.
        views: ``None``: one pass, ``(N, D)`` features in sample order (by ``index`` when
            the batches carry it, else in iteration order). An int ``V``: the dataset is
            iterated until every sample has ``V`` views (``V`` passes unless batches are
            dropped), ``(N, V, D)`` by ``index``; an augmenting dataset gives ``V``
            different augmentations of each image.
        verbose: 0 silent, 1 a progress bar, 2 one line when done.
        description: what the progress line calls the pass.
        runtime: the backbone's runtime (``retdm_keras.backbone_runtime.RUNTIMES``);
            None: ``model.backbone_runtime``. ONNX Runtime's features equal Keras' within
            ``PARITY_TOLERANCE`` of their scale.
        store_dir: where converted backbones are kept (``backbone_function``'s
            ``store_dir``).

    Returns:
        ``(features, labels)``: float32 ``(N, D)`` or ``(N, V, D)``, and ``(N, C)``.

    Raises:
        ValueError: no batches, ``views`` without a sample ``index``, indices that are not
            ``0..N-1``, or a dataset that never yields some sample ``V`` times.
    """
    if views is not None and views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    forward = backbone_function(
        model.image_embedder,
        model.backbone_runtime if runtime is None else runtime,
        store_dir=store_dir,
        verbose=verbose,
    )
    batches = _num_batches(dataset)
    passes = 1 if views is None else views
    target = None if batches is None else batches * passes
    if verbose:
        print(
            f"RETDM frozen backbone: {description} ({passes} pass{'es' * (passes > 1)}, "
            f"{_RUNTIME_NAMES[forward.runtime]})"
        )
    bar = keras.utils.Progbar(target, verbose=verbose, unit_name="batch")
    chunks: list[tuple[np.ndarray | None, np.ndarray, np.ndarray]] = []
    started, images_seen, step = time.perf_counter(), 0, 0
    counts: np.ndarray | None = None
    for done in range(passes * (_MAX_PASS_FACTOR if views else 1)):
        for batch in dataset:
            images, index, y = _split_batch(batch)
            h = forward(images)
            chunks.append((None if index is None else np.asarray(index, np.int64), h, y.numpy()))
            images_seen += len(h)
            step += 1
            bar.update(min(step, target) if target else step)
        if views is None:
            break
        if chunks and chunks[0][0] is None:
            raise ValueError("extracting several views needs batches that carry an 'index'")
        indices = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.int64)
        counts = np.bincount(indices, minlength=int(indices.max()) + 1 if len(indices) else 0)
        if done + 1 >= passes and len(counts) and counts.min() >= views:
            break
    else:
        if views is not None:
            raise ValueError(
                f"after {passes * _MAX_PASS_FACTOR} passes some samples have fewer than "
                f"{views} views (does the dataset drop samples?)"
            )
    if not chunks:
        raise ValueError(f"the dataset for the {description} is empty")
    if target is not None and step < target:
        bar.update(target)
    seconds = time.perf_counter() - started
    if verbose:
        print(
            f"RETDM frozen backbone: {images_seen} images in {seconds:.1f} s "
            f"({images_seen / max(seconds, 1e-9):.1f} images/s)"
        )
    return _assemble(chunks, views, counts)


def _assemble(chunks, views, counts) -> tuple[np.ndarray, np.ndarray]:
    features = np.concatenate([c[1] for c in chunks])
    labels = np.concatenate([c[2] for c in chunks]).astype(np.float32)
    if chunks[0][0] is None:
        return features, labels
    index = np.concatenate([c[0] for c in chunks])
    n = int(index.max()) + 1
    if index.min() < 0 or (views is None and (len(index) != n or len(np.unique(index)) != n)):
        raise ValueError(
            f"sample indices must be 0..N-1, each once per pass; got {len(index)} samples "
            f"with {len(np.unique(index))} distinct indices in [{index.min()}, {index.max()}]"
        )
    if views is None:
        out = np.empty_like(features)
        out[index] = features
        y = np.empty_like(labels)
        y[index] = labels
        return out, y
    if counts is None or len(counts) != n or counts.min() < views:
        missing = int(np.sum(counts < views)) if counts is not None else n
        raise ValueError(f"{missing} sample(s) have fewer than {views} views")
    out = np.empty((n, views, features.shape[-1]), np.float32)
    y = np.empty((n, labels.shape[-1]), np.float32)
    filled = np.zeros(n, np.int64)
    for row, i in enumerate(index):  # the first V views of each sample, in pass order
        if filled[i] < views:
            out[i, filled[i]] = features[row]
            filled[i] += 1
        y[i] = labels[row]
    return out, y
