"""The sha256-keyed disk cache of extracted features, and the fingerprints behind its keys."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from retdm_keras.backbone_runtime import backbone_weights_sha256
from retdm_keras.data.folder_csv import source_of
from retdm_keras.files import atomic_write, retdm_features_dir, sha256_file
from retdm_keras.frozen_features.extraction import extract_features
from retdm_keras.model import RETDM

CACHE_VERSION = 2
"""Bumped whenever what a cache entry holds or how it is computed changes."""


class FeatureCacheWarning(UserWarning):
    """A feature-cache entry was stale or corrupt and is being rebuilt."""


def default_cache_dir() -> Path:
    """``$KERAS_HOME/retdm_features`` (``~/.keras/retdm_features`` without ``KERAS_HOME``)."""
    return retdm_features_dir()


# --------------------------------------------------------------------------- fingerprints
def backbone_fingerprint(model: RETDM) -> dict[str, Any]:
    """What the backbone features depend on: backbone name, width, image size, compute
    dtype and a sha256 over the backbone's variables (names, shapes, values)."""
    embedder = model.image_embedder
    return {
        "backbone": embedder.backbone_name,
        "width": embedder.width,
        "image_size": list(embedder.image_size),
        "dtype": embedder.compute_dtype,
        "weights_sha256": backbone_weights_sha256(embedder),
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
    store_dir: str | os.PathLike[str] | bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_features`, read from / written to ``cache`` when the dataset says
    what it reads (:func:`data_fingerprint`); ``backbone``: a precomputed
    :func:`backbone_fingerprint`.

    The features do not depend on the backbone's runtime (ONNX Runtime's equal Keras' within
    ``PARITY_TOLERANCE``), so the key does not name it. Converted backbones are kept in
    ``<cache folder>/backbones`` (without ``cache``: ``store_dir``, see
    ``retdm_keras.backbone_runtime.backbone_function``).
    """
    if cache is not None:
        store_dir = cache.directory / "backbones"
    extract = dict(verbose=verbose, description=description, store_dir=store_dir)
    fingerprint = data_fingerprint(dataset) if cache is not None else None
    if fingerprint is None:
        return extract_features(model, dataset, views=views, **extract)
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
    features, labels = extract_features(model, dataset, views=views, **extract)
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
