"""Head weights of an entry whose backbone is a reference to pretrained weights.

``heads.weights.h5`` holds every variable of a ``RETDM`` except the image backbone's (one
HDF5 dataset per variable, in model order, with its path as an attribute); the backbone is
rebuilt from the standard ``keras.applications`` file and checked against the sha256 of
its values recorded when the entry was written (:func:`backbone_sha256`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retdm_keras.zoo.errors import ZooError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM

__all__ = ["backbone_sha256", "check_backbone", "load_head_weights", "save_head_weights"]


def backbone_sha256(model: RETDM) -> str:
    """sha256 over the values of the image backbone's variables (dtype, shape, bytes, in
    order): what a referenced-backbone entry checks the rebuilt backbone against."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for variable in model.image_embedder.backbone.weights:
        value = np.ascontiguousarray(np.asarray(variable.numpy()))
        digest.update(f"{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _head_variables(model: RETDM) -> list:
    """Every variable of ``model`` that is not the image backbone's, in model order."""
    backbone = {id(v) for v in model.image_embedder.backbone.weights}
    return [v for v in model.weights if id(v) not in backbone]


def save_head_weights(model: RETDM, path: str | os.PathLike[str]) -> None:
    """Write every weight but the backbone's to an HDF5 file (one dataset per variable,
    in model order, with its path as an attribute)."""
    import h5py

    with h5py.File(path, "w") as fh:
        fh.attrs["format"] = "retdm_keras.head_weights/1"
        for i, variable in enumerate(_head_variables(model)):
            data = fh.create_dataset(f"{i:04d}", data=variable.numpy())
            data.attrs["path"] = variable.path


def load_head_weights(model: RETDM, path: str | os.PathLike[str]) -> None:
    """Assign the weights :func:`save_head_weights` wrote; the model must be built.

    Raises:
        ValueError: another number of variables, or a shape that differs (named).
    """
    import h5py

    variables = _head_variables(model)
    with h5py.File(path, "r") as fh:
        names = sorted(fh.keys())
        if len(names) != len(variables):
            raise ValueError(
                f"{path}: {len(names)} head weights stored, the model has {len(variables)}"
            )
        values = [fh[n][()] for n in names]
        stored_paths = [str(fh[n].attrs.get("path", n)) for n in names]
    for variable, value, stored in zip(variables, values, stored_paths, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"{path}: {stored} has shape {value.shape}, the model's {variable.path} "
                f"{tuple(variable.shape)}"
            )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def check_backbone(model: RETDM, reference: Mapping[str, Any], folder: Path) -> None:
    """The rebuilt pretrained backbone must be the one the entry's heads were trained on."""
    expected = reference.get("sha256")
    if expected and backbone_sha256(model) != expected:
        raise ZooError(
            f"{folder}: the {reference.get('weights')} weights of backbone {model.backbone!r} "
            f"that Keras loaded differ from those this entry was trained with (sha256 "
            f"{expected[:12]}...): its heads would be wrong. Delete the cached file in "
            f"$KERAS_HOME/models and let Keras fetch it again"
        )
