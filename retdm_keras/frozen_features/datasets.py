"""What frozen-backbone training trains on: feature datasets built from cached views."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.data.folder_csv import image_dataset, source_of
from retdm_keras.frozen_features.cache import (
    FeatureCache,
    backbone_fingerprint,
    cached_features,
    default_cache_dir,
)
from retdm_keras.model import BACKBONE_FEATURES, RETDM
from retdm_keras.training_set import declared_batch_size

DEFAULT_VIEWS = 4
"""Augmented views per training image extracted by default."""


def feature_dataset(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 32,
    training: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches ``({"backbone_features": (B, D), "index": (B,)}, labels)`` for ``RETDM``.

    ``features``: ``(N, D)`` (one view, in order) or ``(N, V, D)``. With ``training`` the
    samples are shuffled every epoch and each epoch draws one of the ``V`` views of every
    sample at random (both reproducible with ``seed``); otherwise the order is kept and a
    multi-view array gives its first view.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.float32)
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3 or len(features) != len(labels):
        raise ValueError(
            f"features must be (N, D) or (N, V, D) with N = {len(labels)} labels, got "
            f"{features.shape}"
        )
    n, num_views = len(features), features.shape[1]
    index = np.arange(n, dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((features, labels, index))
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        draws = tf.data.Dataset.random(
            seed=None if seed is None else seed + 1, rerandomize_each_iteration=True
        )
        ds = tf.data.Dataset.zip(ds, draws)

        def pick(element, draw):
            views, y, i = element
            view = tf.cast(draw % num_views, tf.int32)
            return {BACKBONE_FEATURES: tf.gather(views, view), "index": i}, y
    else:

        def pick(views, y, i):
            return {BACKBONE_FEATURES: views[0], "index": i}, y

    ds = ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass
class FrozenData:
    """Feature datasets for frozen-backbone training (see :func:`prepare_frozen_data`).

    Attributes:
        train: shuffled batches, one random view per image per epoch.
        bank: the plain view of the training set in index order (memory-bank passes).
        val: plain-view validation batches, or None.
        train_views: the ``(N, V, D)`` training features (view 0 the plain one when it
            counts as a view, see ``prepare_frozen_data(plain_view=...)``).
        bank_features: the ``(N, D)`` plain training features.
        val_features: the ``(N_val, D)`` validation features, or None.
        augmented_views: how many of the ``V`` views are augmented passes.
        bank_labels: the ``(N, C)`` labels of ``bank_features``.
        val_labels: the ``(N_val, C)`` labels of ``val_features``, or None.
    """

    train: tf.data.Dataset
    bank: tf.data.Dataset
    val: tf.data.Dataset | None
    train_views: np.ndarray
    bank_features: np.ndarray
    val_features: np.ndarray | None
    augmented_views: int
    bank_labels: np.ndarray | None = None
    val_labels: np.ndarray | None = None


def _rebuilt(source: dict[str, Any], **changes: Any) -> tf.data.Dataset:
    """``image_dataset`` built again from a dataset's ``source_of`` record, with ``changes``
    to its settings (the images were checked when the original was built)."""
    settings = dict(
        image_size=tuple(source["image_size"]),
        batch_size=source["batch_size"],
        training=source["training"],
        shuffle=source["shuffle"],
        seed=source["seed"],
        cache=source.get("cache", False),
        validate_images=False,
    )
    return image_dataset(source["image_dir"], source["files"], **{**settings, **changes})


def _plain_copy(dataset: tf.data.Dataset) -> tf.data.Dataset | None:
    """The un-augmented, unshuffled twin of an ``image_dataset`` (None for others)."""
    source = source_of(dataset)
    if source is None:
        return None
    return _rebuilt(source, training=False, shuffle=False, seed=None, cache=False)


def _extraction_copy(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The same augmented pipeline without shuffling, for extracting views: the features
    are stored by sample index, so the order does not matter, and filling a shuffle buffer
    of decoded images every pass costs about a sixth of the extraction time (measured on
    MIML at 224 px). Other datasets are returned as they are."""
    source = source_of(dataset)
    if source is None or not source["shuffle"]:
        return dataset
    return _rebuilt(source, shuffle=False)


def _is_plain_twin(bank_data: tf.data.Dataset | None, train_data: tf.data.Dataset) -> bool:
    """Whether ``bank_data`` is the un-augmented version of ``train_data``: both built by
    ``image_dataset`` from the same images, labels and size, the bank without augmentation."""
    bank, train = source_of(bank_data), source_of(train_data)
    if bank is None or train is None or bank["training"]:
        return False
    return (
        bank["image_dir"] == train["image_dir"]
        and list(bank["image_size"]) == list(train["image_size"])
        and list(bank["files"].filenames) == list(train["files"].filenames)
        and np.array_equal(bank["files"].labels, train["files"].labels)
    )


def prepare_frozen_data(
    model: RETDM,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset | None = None,
    bank_data: tf.data.Dataset | None = None,
    *,
    views: int = DEFAULT_VIEWS,
    cache_dir: str | os.PathLike[str] | bool | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    plain_view: bool = True,
    verbose: int = 1,
) -> FrozenData:
    """Extract (or read from the cache) the backbone features of the training, memory-bank
    and validation data, and build the datasets ``fit_stages`` trains on.

    Args:
        model: the ``RETDM`` (an image backbone).
        train_data: augmented training batches ``({"images", "index"}, labels)``; iterated
            ``views`` times.
        val_data: validation image batches, or None.
        bank_data: the plain (un-augmented) training set; default: the plain twin of an
            ``image_dataset`` ``train_data``, else the first augmented view.
        views: views per training image (see ``plain_view``).
        cache_dir: cache folder; None: :func:`default_cache_dir`; False: no disk cache.
        batch_size: batches of the feature datasets (default: ``train_data``'s, else 32).
        seed: shuffling and view draws (default: ``train_data``'s seed).
        plain_view: with ``views >= 2``, make the plain view (extracted anyway for the
            memory bank) one of the ``views`` training views, so only ``views - 1``
            augmented passes run. Default True (ours; see ``docs/method.md``, "Frozen
            backbone"). It applies when ``bank_data`` is the plain twin of an
            ``image_dataset`` ``train_data`` (the default); False: ``views`` augmented
            passes.
        verbose: 0 silent, 1 progress bars, 2 one line per pass.

    Raises:
        ValueError: an ``"mlp"`` model, ``views < 1``, or data that do not line up.
    """
    if model.backbone == "mlp":
        raise ValueError("frozen-backbone training needs an image backbone, not 'mlp'")
    if views < 1:
        raise ValueError(f"feature views must be >= 1, got {views}")
    cache = None
    if cache_dir is not False:
        cache = FeatureCache(default_cache_dir() if cache_dir in (None, True) else cache_dir)
    backbone = backbone_fingerprint(model)
    common = dict(
        cache=cache, backbone=backbone, verbose=verbose, store_dir=None if cache else False
    )
    if bank_data is None:
        bank_data = _plain_copy(train_data)
    bank_features = bank_labels = None
    if bank_data is not None:
        bank_features, bank_labels = cached_features(
            model, bank_data, description="training set, plain view", **common
        )
    reuse = plain_view and views >= 2 and _is_plain_twin(bank_data, train_data)
    augmented = views - 1 if reuse else views
    train_views, train_labels = cached_features(
        model,
        _extraction_copy(train_data),
        views=augmented,
        description=f"training set, {augmented} augmented view{'s' * (augmented > 1)}",
        **common,
    )
    if bank_features is None:
        bank_features, bank_labels = train_views[:, 0], train_labels
    if bank_features.shape[0] != train_views.shape[0] or not np.array_equal(
        bank_labels, train_labels
    ):
        raise ValueError(
            "bank_data and train_data do not hold the same samples "
            f"({bank_features.shape[0]} vs {train_views.shape[0]}, or other labels by index)"
        )
    if reuse:
        train_views = np.concatenate([bank_features[:, None], train_views], axis=1)
    val = val_features = val_labels = None
    if val_data is not None:
        val_features, val_labels = cached_features(
            model, val_data, description="validation set, plain view", **common
        )
    source = source_of(train_data) or {}
    if batch_size is None:
        batch_size = declared_batch_size(train_data) or 32
    if seed is None:
        seed = source.get("seed")
    train = feature_dataset(
        train_views, train_labels, batch_size=batch_size, training=True, seed=seed
    )
    bank = feature_dataset(bank_features, bank_labels, batch_size=batch_size)
    if val_features is not None:
        val = feature_dataset(val_features, val_labels, batch_size=batch_size)
    return FrozenData(
        train,
        bank,
        val,
        train_views,
        bank_features,
        val_features,
        augmented,
        bank_labels=bank_labels,
        val_labels=val_labels,
    )
