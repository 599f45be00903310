"""Frozen-backbone training: pooled backbone features, extracted once and cached on disk.

With the backbone frozen, ``f(x)`` is a fixed function of each input image up to its
dropout and projection: ``ImageEmbedder.backbone_features`` (preprocessing, backbone,
pooling). So the expensive part runs once, not once per epoch:

* the **plain view** (the evaluation transform) of the training set fills the memory bank,
  and that of the validation set drives the learning-rate schedule, ``(N, D)`` each;
* the **training set** gets ``V`` views (``views``): the plain view plus ``V - 1`` passes
  through the user's own augmented pipeline (the paper's corner/centre multi-scale crops
  and flips for :func:`retdm_keras.data.image_dataset`; ``plain_view=False``: ``V``
  augmented passes), giving ``(N, V, D)`` features by sample ``index``; every epoch of
  :func:`feature_dataset` draws one view per image.

Each array set is cached under ``cache_dir`` (default ``$KERAS_HOME/retdm_features``) as
``<key>.npz`` plus a ``<key>.json`` manifest, where the key is a sha256 of: the images
(file names relative to the image folder and a sha256 of each file's bytes — so a copied,
moved or re-checked-out folder hits the cache and an edited image does not), the labels,
the pipeline (image size, augmentation, seed, batch size), the backbone (name, width,
image size and a sha256 of its weights), the number of views and :data:`CACHE_VERSION`.
Files are written to a temporary name and moved into place (``os.replace``), the array file
first and the manifest last; a manifest whose key, file hash or shapes do not match is a stale or
corrupt entry, which is rebuilt with a warning, and a cache folder that cannot be written
(a read-only ``KERAS_HOME``) only costs a warning. Datasets that do not say what they read
(anything but an ``image_dataset`` as built) are extracted without a disk cache.

``fit_stages(model, train, val, freeze_backbone=True)`` calls :func:`prepare_frozen_data`
and trains on its datasets; the result is an ordinary ``RETDM`` that predicts on raw images.

Example:

>>> import numpy as np, tensorflow as tf
>>> from retdm_keras import RETDM
>>> rng = np.random.default_rng(0)
>>> x = {"images": rng.random((8, 32, 32, 3)).astype("float32") * 255, "index": np.arange(8)}
>>> y = np.eye(4, dtype="float32")[np.arange(8) % 4]
>>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
>>> model = RETDM(4, backbone="tiny_cnn", image_size=32, embed_dim=8)
>>> views, labels = extract_features(model, ds, views=2, verbose=0)
>>> views.shape, labels.shape
((8, 2, 32), (8, 4))
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from retdm_keras.data.folder_csv import image_dataset, source_of
from retdm_keras.files import atomic_write, sha256_file
from retdm_keras.model import BACKBONE_FEATURES, RETDM
from retdm_keras.training_set import declared_batch_size

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_VIEWS",
    "FeatureCache",
    "FrozenData",
    "backbone_fingerprint",
    "cached_features",
    "data_fingerprint",
    "default_cache_dir",
    "extract_features",
    "feature_dataset",
    "prepare_frozen_data",
]

CACHE_VERSION = 2
"""Bumped whenever what a cache entry holds or how it is computed changes."""
DEFAULT_VIEWS = 4
"""Augmented views per training image extracted by default."""
_MAX_PASS_FACTOR = 3  # passes over a dataset that drops samples: at most 3·V


class FeatureCacheWarning(UserWarning):
    """A feature-cache entry was stale or corrupt and is being rebuilt."""


def default_cache_dir() -> Path:
    """``$KERAS_HOME/retdm_features`` (``~/.keras/retdm_features`` without ``KERAS_HOME``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "retdm_features"


# --------------------------------------------------------------------------- fingerprints
def backbone_fingerprint(model: RETDM) -> dict[str, Any]:
    """What the backbone features depend on: backbone name, width, image size, compute
    dtype and a sha256 over the backbone's variables (names, shapes, values)."""
    embedder = model.image_embedder
    digest = hashlib.sha256()
    for variable in embedder.backbone.weights:
        value = np.ascontiguousarray(np.asarray(variable.numpy()))
        digest.update(f"{variable.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return {
        "backbone": embedder.backbone_name,
        "width": embedder.width,
        "image_size": list(embedder.image_size),
        "dtype": embedder.compute_dtype,
        "weights_sha256": digest.hexdigest(),
    }


def data_fingerprint(dataset: tf.data.Dataset) -> dict[str, Any] | None:
    """What an :func:`~retdm_keras.data.image_dataset` dataset reads — file names with a
    sha256 of each file's contents, a sha256 of the labels, the pipeline settings — or None
    for a dataset that does not say (then nothing is cached on disk).

    The contents, not the modification times or the folder's absolute path, identify the
    images: a data folder copied to another disk or checked out again keeps its cache.

    Raises:
        FileNotFoundError: an image listed by the dataset no longer exists.
    """
    source = source_of(dataset)
    if source is None:
        return None
    files = source["files"]
    root = source["image_dir"]
    listing = [[name, _content_sha256(os.path.join(root, name))] for name in files.filenames]
    labels = np.ascontiguousarray(np.asarray(files.labels, np.float32))
    return {
        "files_sha256": _sha256_json(listing),
        "num_samples": len(files),
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "label_names": list(files.label_names),
        **{
            key: source[key]
            for key in ("image_size", "batch_size", "drop_remainder", "training", "shuffle")
        },
        "seed": source["seed"],
        "augmentation": source["augmentation"],
    }


_CONTENT_SHA256: dict[tuple[str, int, int], str] = {}


def _content_sha256(path: str) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) for this process (the
    training and memory-bank pipelines read the same images)."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    digest = _CONTENT_SHA256.get(key)
    if digest is None:
        digest = _CONTENT_SHA256[key] = sha256_file(path)
    return digest


def _sha256_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- extraction
_FEATURE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _feature_function(model: RETDM) -> Callable[[tf.Tensor], tf.Tensor]:
    """The compiled ``backbone_features`` of ``model`` (one per embedder: no retracing)."""
    embedder = model.image_embedder
    function = _FEATURE_FUNCTIONS.get(embedder)
    if function is None:

        @tf.function(reduce_retracing=True)
        def function(images):
            return tf.cast(embedder.backbone_features(images, training=False), tf.float32)

        _FEATURE_FUNCTIONS[embedder] = function
    return function


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

    Returns:
        ``(features, labels)``: float32 ``(N, D)`` or ``(N, V, D)``, and ``(N, C)``.

    Raises:
        ValueError: no batches, ``views`` without a sample ``index``, indices that are not
            ``0..N-1``, or a dataset that never yields some sample ``V`` times.
    """
    if views is not None and views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    forward = _feature_function(model)
    batches = _num_batches(dataset)
    passes = 1 if views is None else views
    target = None if batches is None else batches * passes
    if verbose:
        print(f"RETDM frozen backbone: {description} ({passes} pass{'es' * (passes > 1)})")
    bar = keras.utils.Progbar(target, verbose=verbose, unit_name="batch")
    chunks: list[tuple[np.ndarray | None, np.ndarray, np.ndarray]] = []
    started, images_seen, step = time.perf_counter(), 0, 0
    counts: np.ndarray | None = None
    for done in range(passes * (_MAX_PASS_FACTOR if views else 1)):
        for batch in dataset:
            images, index, y = _split_batch(batch)
            h = forward(images).numpy()
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


# --------------------------------------------------------------------------- the disk cache
class FeatureCache:
    """A folder of ``<key>.npz`` feature arrays with ``<key>.json`` manifests.

    ``load`` returns None for a missing entry and, with a ``FeatureCacheWarning``, for an
    entry that does not check out (manifest unreadable or for another key, array file
    missing or with another sha256, shapes other than expected); ``save`` writes atomically.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def paths(self, key: str) -> tuple[Path, Path]:
        """``(arrays file, manifest file)`` of ``key``."""
        return self.directory / f"{key}.npz", self.directory / f"{key}.json"

    def load(
        self, key: str, expected_shapes: dict[str, tuple[int | None, ...]] | None = None
    ) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (missing, stale or corrupt).

        ``expected_shapes``: ``{name: shape}`` the arrays must have (``None`` matches any
        size along that axis).
        """
        arrays_path, manifest_path = self.paths(key)
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("key") != key or manifest.get("version") != CACHE_VERSION:
                raise ValueError("the manifest is for another key or cache version")
            if not arrays_path.exists():
                raise ValueError(f"{arrays_path.name} is missing")
            if sha256_file(arrays_path) != manifest.get("sha256"):
                raise ValueError(f"{arrays_path.name} does not match its manifest's sha256")
            with np.load(arrays_path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            for name, shape in (expected_shapes or {}).items():
                if name not in arrays:
                    raise ValueError(f"no array {name!r}")
                got = arrays[name].shape
                if len(got) != len(shape) or any(
                    s is not None and s != g for s, g in zip(shape, got, strict=True)
                ):
                    raise ValueError(f"array {name!r} has shape {got}, expected {shape}")
            return arrays
        except Exception as err:  # a cache must never stop training: rebuild instead
            warnings.warn(
                f"feature cache entry {manifest_path} is stale or corrupt ({err}); rebuilding",
                FeatureCacheWarning,
                stacklevel=3,
            )
            return None

    def save(self, key: str, arrays: dict[str, np.ndarray], description: dict[str, Any]) -> Path:
        """Store ``arrays`` under ``key`` (array file, then manifest; each atomically)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        arrays_path, manifest_path = self.paths(key)
        atomic_write(arrays_path, lambda tmp: _write_bytes(tmp, lambda fh: np.savez(fh, **arrays)))
        manifest = {
            "version": CACHE_VERSION,
            "key": key,
            "sha256": sha256_file(arrays_path),
            "shapes": {name: list(a.shape) for name, a in arrays.items()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "description": description,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
        atomic_write(manifest_path, lambda tmp: _write_bytes(tmp, lambda fh: fh.write(text)))
        return arrays_path


def _write_bytes(path: str, write: Callable[[Any], Any]) -> None:
    # through a file handle: np.savez given a name would append ".npz" to the temporary one
    with open(path, "wb") as fh:
        write(fh)


def cached_features(
    model: RETDM,
    dataset: tf.data.Dataset,
    *,
    views: int | None = None,
    cache: FeatureCache | None = None,
    backbone: dict[str, Any] | None = None,
    verbose: int = 1,
    description: str = "features",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_features`, read from / written to ``cache`` when the dataset says
    what it reads (:func:`data_fingerprint`); ``backbone``: a precomputed
    :func:`backbone_fingerprint`."""
    fingerprint = data_fingerprint(dataset) if cache is not None else None
    if fingerprint is None:
        return extract_features(
            model, dataset, views=views, verbose=verbose, description=description
        )
    identity = {
        "version": CACHE_VERSION,
        "data": fingerprint,
        "backbone": backbone or backbone_fingerprint(model),
        "views": views,
    }
    key = _sha256_json(identity)
    n, d = fingerprint["num_samples"], model.image_embedder.feature_dim
    shape = (n, d) if views is None else (n, views, d)
    stored = cache.load(key, {"features": shape, "labels": (n, None)})
    if stored is not None:
        if verbose:
            print(f"RETDM frozen backbone: {description} from the cache ({tuple(shape)})")
        return stored["features"], stored["labels"]
    features, labels = extract_features(
        model, dataset, views=views, verbose=verbose, description=description
    )
    if features.shape == shape:
        try:
            cache.save(key, {"features": features, "labels": labels}, identity)
        except OSError as err:  # e.g. a read-only KERAS_HOME: train anyway, uncached
            warnings.warn(
                f"could not write the feature cache in {cache.directory} ({err}); training "
                "goes on without it (pass feature_cache=DIR for a writable folder)",
                FeatureCacheWarning,
                stacklevel=2,
            )
    return features, labels


# --------------------------------------------------------------------------- datasets
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
    """

    train: tf.data.Dataset
    bank: tf.data.Dataset
    val: tf.data.Dataset | None
    train_views: np.ndarray
    bank_features: np.ndarray
    val_features: np.ndarray | None
    augmented_views: int


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
            augmented passes run (ours: at 4 views, 19% fewer images through the backbone,
            and the same validation accuracy; see ``docs/method.md``). It applies when
            ``bank_data`` is the plain twin of an ``image_dataset`` ``train_data`` (the
            default); False: ``views`` augmented passes.
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
    common = dict(cache=cache, backbone=backbone, verbose=verbose)
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
    val = val_features = None
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
    return FrozenData(train, bank, val, train_views, bank_features, val_features, augmented)
