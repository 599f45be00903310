"""Converted backbones on disk: ``<key>.onnx`` with a ``<key>.json`` manifest, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from retdm_keras.files import atomic_write, retdm_features_dir

STORE_VERSION = 1
"""Bumped whenever what a stored conversion holds or how it is made changes."""

MAX_ENTRIES = 8
"""Converted backbones kept per folder; the least recently used beyond that are deleted (a
fine-tuned backbone gets a new file for each set of weights it is predicted with)."""


class BackboneRuntimeWarning(UserWarning):
    """The fast backbone runtime fell back to Keras, or a stored conversion was rebuilt."""


def default_store_dir() -> Path:
    """``$KERAS_HOME/retdm_features/backbones`` (``~/.keras/...`` without ``KERAS_HOME``),
    beside the frozen-feature cache."""
    return retdm_features_dir() / "backbones"


def backbone_weights_sha256(embedder, values: list[np.ndarray] | None = None) -> str:
    """sha256 over an ``ImageEmbedder``'s backbone variables (path, dtype, shape, values).

    ``values``: the variables' values, already read (``[v.numpy() for v in weights]``).
    """
    variables = embedder.backbone.weights
    if values is None:
        values = [variable.numpy() for variable in variables]
    digest = hashlib.sha256()
    for variable, value in zip(variables, values, strict=True):
        value = np.ascontiguousarray(np.asarray(value))
        digest.update(f"{variable.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class ConvertedBackboneStore:
    """A folder of converted backbones: ``<key>.onnx`` files with ``<key>.json`` manifests.

    ``load`` returns None for a missing entry and, with a :class:`BackboneRuntimeWarning`,
    for one that does not check out (unreadable manifest, another key or version, a missing
    model file or one whose sha256 differs); ``save`` writes the model file, then the
    manifest, each atomically, and keeps the :data:`MAX_ENTRIES` most recently used entries.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def paths(self, key: str) -> tuple[Path, Path]:
        """``(model file, manifest file)`` of ``key``."""
        return self.directory / f"{key}.onnx", self.directory / f"{key}.json"

    def load(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """``(model bytes, manifest)`` stored under ``key``, or None (missing or rebuilt)."""
        model_path, manifest_path = self.paths(key)
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("key") != key or manifest.get("version") != STORE_VERSION:
                raise ValueError("the manifest is for another key or store version")
            if not model_path.exists():
                raise ValueError(f"{model_path.name} is missing")
            data = model_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
                raise ValueError(f"{model_path.name} does not match its manifest's sha256")
        except Exception as err:  # a cache must never stop work: convert again instead
            warnings.warn(
                f"converted backbone {manifest_path} is stale or corrupt ({err}); converting "
                "the backbone again",
                BackboneRuntimeWarning,
                stacklevel=3,
            )
            return None
        try:
            os.utime(manifest_path)  # most recently used
        except OSError:
            pass
        return data, manifest

    def save(self, key: str, data: bytes, description: dict[str, Any]) -> Path:
        """Store ``data`` under ``key`` (model file, then manifest; each atomically).

        Raises:
            OSError: the folder cannot be written.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        model_path, manifest_path = self.paths(key)
        atomic_write(model_path, lambda tmp: Path(tmp).write_bytes(data))
        manifest = {
            "version": STORE_VERSION,
            "key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "description": description,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
        atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        self._prune(keep=key)
        return model_path

    def _prune(self, keep: str) -> None:
        manifests = sorted(
            self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for manifest in manifests[MAX_ENTRIES:]:
            if manifest.stem == keep:
                continue
            for path in self.paths(manifest.stem):
                path.unlink(missing_ok=True)
