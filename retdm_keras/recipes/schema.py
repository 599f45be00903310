"""The recipe schema: the :class:`Recipe` dataclasses and their validation.

:meth:`Recipe.from_dict` validates a recipe's content and names the offending field on any
error (``x.yaml: model.lam: expected a number, got 'high'``). Paths are kept as written (so a
published recipe is portable) and resolved only when data is built
(:func:`retdm_keras.recipes.paths.expand_path`). The YAML files are
:mod:`retdm_keras.recipes.recipe_files`'s.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retdm_keras.optimizer_defaults import OPTIMIZERS
from retdm_keras.recipes.errors import RecipeError
from retdm_keras.recipes.paths import expand_path

__all__ = [
    "DATA_FORMATS",
    "DataSpec",
    "ModelSpec",
    "Recipe",
    "TrainingSpec",
]


# format -> {field: (type, required)}; "path" fields are resolved with expand_path.
_DATA_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "folder_csv": {
        "image_dir": ("path", True),
        "labels": ("path", True),
        "split_json": ("path", False),
        "train_split": ("str", False),
        "val_split": ("str", False),
        "test_split": ("str", False),
        "cache": ("bool", False),
    },
    "arff": {
        "train": ("path", True),
        "test": ("path", False),
        "labels_xml": ("path", False),
        "num_labels": ("int", False),
        "val_fraction": ("float", False),
    },
    "coco": {
        "train_annotations": ("path", True),
        "train_images": ("path", True),
        "test_annotations": ("path", False),
        "test_images": ("path", False),
        "val_fraction": ("float", False),
        "cache": ("bool", False),
    },
    "yolo": {
        "class_names": ("path", True),
        "train_labels": ("path", True),
        "train_images": ("path", True),
        "test_labels": ("path", False),
        "test_images": ("path", False),
        "val_fraction": ("float", False),
        "cache": ("bool", False),
    },
    "tfds": {
        "name": ("str", True),
        "manual_dir": ("path", False),
        "data_dir": ("path", False),
        "train_split": ("str", False),
        "val_split": ("str", False),
        "test_split": ("str", False),
    },
}
DATA_FORMATS: tuple[str, ...] = tuple(_DATA_FIELDS)
"""The ``data.format`` values a recipe may use."""


# --------------------------------------------------------------------------- #
# The recipe
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from: a ``format`` and that format's fields (see module doc)."""

    format: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """The value of field ``name`` as written in the recipe, or ``default``."""
        value = self.options.get(name)
        return default if value is None else value

    @property
    def path_fields(self) -> tuple[str, ...]:
        """The names of this format's fields that hold paths (set or not)."""
        return tuple(k for k, (kind, _) in _DATA_FIELDS[self.format].items() if kind == "path")

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, **dict(self.options)}


@dataclass(frozen=True)
class ModelSpec:
    """``RETDM`` constructor arguments (``num_labels``, ``label_names``, ``input_dim`` come
    from the data)."""

    backbone: str = "mobilenet_v2"
    weights: str | None = None
    image_size: int = 224
    embed_dim: int = 512
    num_neighbors: int = 10
    lam: float = 1.0
    mu: float = 1.0
    alpha: float = 1.0
    margin: float = 0.0
    distance: str = "sqeuclidean"
    embedding_norm: float | None = 2.0
    neighbor_images: str = "memory_bank"
    backbone_width: float | None = None
    label_hidden_units: int = 512
    dropout: float = 0.0
    freeze_batchnorm: bool | None = None
    linear_skip: bool = True


@dataclass(frozen=True)
class TrainingSpec:
    """The ``fit_stages`` schedule: epochs and learning rate per stage, optimiser, batches.

    ``optimizer`` None (or absent) is the backbone's default
    (:mod:`retdm_keras.optimizer_defaults`: Adam for ``"mlp"`` feature vectors, the paper's
    SGD for images); ``learning_rates`` None are that optimiser's defaults (3e-4 / 3e-4 / 3e-5
    for Adam, 0.01 / 0.01 / 0.001 for SGD); ``weight_decay`` None is its default for the
    backbone (``default_weight_decay``: 3 for Adam / AdamW on feature vectors, else 1e-4).
    ``freeze_backbone`` None (or absent) is ``fit_stages``' default: frozen when the image
    backbone starts from pretrained ``weights``, trained otherwise. ``baseline`` None (or
    absent) is ``fit_stages``' default: with a validation split, the tuned logistic-regression
    baseline is mixed in at the share chosen on it (``retdm_keras.baseline_blend``).
    """

    epochs: tuple[int, int, int] = (10, 5, 10)
    learning_rates: tuple[float, float, float] | None = None
    optimizer: str | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    batch_size: int = 32
    seed: int = 0
    reduce_lr_patience: int = 2
    freeze_backbone: bool | None = None
    feature_views: int = 4
    baseline: bool | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe; :meth:`to_dict` gives back the YAML content (paths unresolved).

    Attributes:
        name: the zoo name of the checkpoint it makes (``[a-z0-9][a-z0-9._-]*``).
        dataset: a human-readable name of the data set.
        description: one line for the model card.
        data: the data source and split.
        model: ``RETDM`` arguments.
        training: the training schedule.
        source: the YAML file it was read from (relative paths are relative to its folder).
    """

    name: str
    data: DataSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    dataset: str = ""
    description: str = ""
    source: str | None = None

    @property
    def base_dir(self) -> Path:
        """The folder relative data paths are resolved against."""
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def path(self, name: str) -> Path | None:
        """Data field ``name`` as a resolved path (``None`` when not set)."""
        value = self.data.get(name)
        if value is None:
            return None
        where = f"{self.source}: data.{name}" if self.source else f"data.{name}"
        return expand_path(value, base=self.base_dir, where=where)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (what the YAML holds)."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "description": self.description,
            "data": self.data.to_dict(),
            "model": dataclasses.asdict(self.model),
            "training": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self.training).items()
            },
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], source: str | None = None) -> Recipe:
        """Validate ``config`` (the YAML content); errors name ``source`` and the field."""
        where = f"{source}: " if source else ""
        if not isinstance(config, Mapping):
            raise RecipeError(f"{where}a recipe must be a mapping, got {type(config).__name__}")
        known = {"name", "dataset", "description", "data", "model", "training"}
        _no_unknown(config, known, where, "")
        name = _check_value(config.get("name"), "str", where, "name", required=True)
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
            raise RecipeError(
                f"{where}name: {name!r} must be lower-case letters, digits, '.', '_' or '-'"
            )
        model = _spec(ModelSpec, config.get("model", {}), where, "model")
        training = _training_spec(config.get("training", {}), where)
        if training.freeze_backbone and model.backbone == "mlp":
            raise RecipeError(
                f"{where}training.freeze_backbone: needs an image backbone, not 'mlp' "
                "(feature vectors have no backbone to freeze)"
            )
        return cls(
            name=name,
            dataset=_check_value(config.get("dataset", ""), "str", where, "dataset") or "",
            description=_check_value(config.get("description", ""), "str", where, "description")
            or "",
            data=_data_spec(config.get("data"), where),
            model=model,
            training=training,
            source=source,
        )


def _no_unknown(config: Mapping[str, Any], known: set[str], where: str, prefix: str) -> None:
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise RecipeError(
            f"{where}{prefix}{unknown[0]}: unknown field; expected one of {sorted(known)}"
        )


def _check_value(value: Any, kind: str, where: str, name: str, required: bool = False) -> Any:
    """``value`` checked against ``kind`` (str, path, int, float, bool); None passes."""
    if value is None:
        if required:
            raise RecipeError(f"{where}{name}: required")
        return None
    ok = {
        "str": isinstance(value, str),
        "path": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
    }[kind]
    if not ok:
        expected = {"path": "a path string", "str": "a string", "int": "an integer"}.get(
            kind, "a number" if kind == "float" else "true or false"
        )
        raise RecipeError(f"{where}{name}: expected {expected}, got {value!r}")
    return float(value) if kind == "float" else value


def _kind_of(hint: Any) -> tuple[str, bool]:
    """(kind, optional) of a dataclass field annotation."""
    optional = False
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    return {str: "str", int: "int", float: "float", bool: "bool"}[hint], optional


def _spec(cls: type, config: Any, where: str, section: str) -> Any:
    """A ``ModelSpec``/``TrainingSpec`` from ``config``, each field type-checked."""
    if not isinstance(config, Mapping):
        raise RecipeError(f"{where}{section}: expected a mapping, got {config!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    _no_unknown(config, names, where, f"{section}.")
    values = {}
    for key, value in config.items():
        kind, optional = _kind_of(hints[key])
        if value is None and not optional:
            raise RecipeError(f"{where}{section}.{key}: must not be null")
        values[key] = _check_value(value, kind, where, f"{section}.{key}")
    return cls(**values)


def _training_spec(config: Any, where: str) -> TrainingSpec:
    if not isinstance(config, Mapping):
        raise RecipeError(f"{where}training: expected a mapping, got {config!r}")
    config = dict(config)
    sequences = {}
    for key, kind in (("epochs", "int"), ("learning_rates", "float")):
        if key not in config:
            continue
        value = config.pop(key)
        if value is None and key == "learning_rates":  # the optimiser's defaults
            sequences[key] = None
            continue
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise RecipeError(
                f"{where}training.{key}: expected 3 values (classifier, metric, joint stages), "
                f"got {value!r}"
            )
        sequences[key] = tuple(
            _check_value(v, kind, where, f"training.{key}[{i}]", required=True)
            for i, v in enumerate(value)
        )
    spec = dataclasses.replace(_spec(TrainingSpec, config, where, "training"), **sequences)
    if any(e < 0 for e in spec.epochs):
        raise RecipeError(f"{where}training.epochs: must be >= 0, got {list(spec.epochs)}")
    if spec.learning_rates is not None and any(lr <= 0 for lr in spec.learning_rates):
        raise RecipeError(f"{where}training.learning_rates: must be > 0")
    if spec.optimizer is not None and spec.optimizer not in OPTIMIZERS:
        raise RecipeError(
            f"{where}training.optimizer: expected one of {OPTIMIZERS}, got {spec.optimizer!r}"
        )
    if spec.weight_decay is not None and spec.weight_decay < 0:
        raise RecipeError(f"{where}training.weight_decay: must be >= 0, got {spec.weight_decay}")
    if spec.batch_size < 1:
        raise RecipeError(f"{where}training.batch_size: must be >= 1, got {spec.batch_size}")
    if spec.feature_views < 1:
        raise RecipeError(f"{where}training.feature_views: must be >= 1, got {spec.feature_views}")
    return spec


def _data_spec(config: Any, where: str) -> DataSpec:
    if not isinstance(config, Mapping):
        raise RecipeError(f"{where}data: required, a mapping with a 'format'")
    fmt = config.get("format")
    if fmt not in _DATA_FIELDS:
        raise RecipeError(f"{where}data.format: expected one of {DATA_FORMATS}, got {fmt!r}")
    fields = _DATA_FIELDS[fmt]
    _no_unknown({k: v for k, v in config.items() if k != "format"}, set(fields), where, "data.")
    options = {}
    for key, (kind, required) in fields.items():
        value = _check_value(config.get(key), kind, where, f"data.{key}")
        if required and value is None:
            raise RecipeError(f"{where}data.{key}: required for format {fmt!r}")
        if value is not None:
            options[key] = value
    fraction = options.get("val_fraction")
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise RecipeError(f"{where}data.val_fraction: must be in (0, 1), got {fraction}")
    return DataSpec(fmt, options)
