"""Recipes: one YAML file holding everything needed to reproduce a zoo checkpoint.

A recipe names the data (source and split), the model (``RETDM`` arguments) and the training
schedule (the three stages of ``fit_stages``, optimiser, batch size, seed)::

    name: scene-features
    dataset: MULAN scene features, 6 labels
    data:
      format: arff                                  # folder_csv | arff | coco | yolo | tfds
      train: ${RETDM_DATA_DIR}/mulan/scene/scene-train.arff
      test: ${RETDM_DATA_DIR}/mulan/scene/scene-test.arff
      labels_xml: ${RETDM_DATA_DIR}/mulan/scene/scene.xml
      val_fraction: 0.1
    model: {backbone: mlp, embed_dim: 256, lam: 0.1, mu: 0.1}
    training: {epochs: [30, 10, 30], learning_rates: [0.01, 0.01, 0.001], batch_size: 32}

``training.freeze_backbone: true`` (image backbones) trains with the backbone frozen on
cached pooled features, ``training.feature_views`` (default 4) augmented views per training
image (see :mod:`retdm_keras.frozen_features`).

:func:`load_recipe` validates the file into a :class:`Recipe` and names the offending field
on any error (``recipes/x.yaml: model.lam: expected a number, got 'high'``). Paths are kept
as written (so a published recipe is portable) and resolved only when data is built:
``${NAME}`` is an environment variable, ``${RETDM_DATA_DIR}`` defaults to ``../shared/data``
next to the repository when that folder exists, ``~`` is the home folder, and relative paths
are relative to the recipe file.

The data formats and their fields (``*`` = required):

============== ==========================================================================
``folder_csv`` ``image_dir``\\*, ``labels``\\* (CSV), ``split_json``, ``train_split``,
               ``val_split``, ``test_split`` (default ``train``/``val``/``test`` when the
               split file has them), ``cache``
``arff``       ``train``\\*, ``test``, ``labels_xml`` or ``num_labels``, ``val_fraction``
``coco``       ``train_annotations``\\*, ``train_images``\\*, ``test_annotations``,
               ``test_images`` (COCO instances JSON), ``val_fraction``, ``cache``
``yolo``       ``class_names``\\* (YAML), ``train_labels``\\*, ``train_images``\\*,
               ``test_labels``, ``test_images``, ``val_fraction``, ``cache``
``tfds``       ``name``\\* (``miml_scene``, ``mirflickr25k``, ``nus_wide``, ``coco/2014``,
               ``voc/2007``), ``manual_dir``, ``data_dir``, ``train_split``, ``val_split``,
               ``test_split`` (tfds split strings, slices allowed)
============== ==========================================================================

:func:`train_recipe` runs the whole thing: build the datasets and the model, ``fit_stages``,
evaluate the 12 metrics on the recipe's test split and write a zoo entry folder
(see :mod:`retdm_keras.zoo`)::

    recipe = load_recipe("recipes/scene-features.yaml")
    entry = train_recipe(recipe, "runs/zoo/scene-features")   # then zoo.publish(entry)

The command line: ``retdm-keras train --recipe recipes/scene-features.yaml --out DIR``;
``retdm-keras tune --recipe ...`` writes the best ``lam``/``mu`` back as a recipe file
(:func:`save_recipe`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

if TYPE_CHECKING:  # pragma: no cover - typing only
    import keras
    import tensorflow as tf

    from retdm_keras.data.labels import LabeledFiles
    from retdm_keras.model import RETDM

__all__ = [
    "DATA_FORMATS",
    "DataSpec",
    "ModelSpec",
    "Recipe",
    "TrainData",
    "TrainingSpec",
    "arff_data",
    "build_datasets",
    "build_model",
    "default_data_dir",
    "expand_path",
    "find_recipe",
    "image_folder_data",
    "load_recipe",
    "WeightsUnavailableError",
    "make_optimizer",
    "model_kwargs",
    "predict_with_labels",
    "save_recipe",
    "split_off_validation",
    "train_recipe",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES_DIR = REPO_ROOT / "recipes"
"""The recipes shipped with the repository (``recipes/*.yaml``)."""

_OPTIMIZERS = ("sgd", "adam", "adamw")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

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


class RecipeError(ValueError):
    """A recipe file that does not validate; the message names the file and the field."""


class WeightsUnavailableError(RuntimeError):
    """``weights: imagenet`` could not be loaded (no download, no cached file)."""


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


@dataclass(frozen=True)
class TrainingSpec:
    """The ``fit_stages`` schedule: epochs and learning rate per stage, optimiser, batches."""

    epochs: tuple[int, int, int] = (10, 5, 10)
    learning_rates: tuple[float, float, float] = (0.01, 0.01, 0.001)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 32
    seed: int = 0
    reduce_lr_patience: int = 2
    freeze_backbone: bool = False
    feature_views: int = 4


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
    if any(lr <= 0 for lr in spec.learning_rates):
        raise RecipeError(f"{where}training.learning_rates: must be > 0")
    if spec.optimizer not in _OPTIMIZERS:
        raise RecipeError(
            f"{where}training.optimizer: expected one of {_OPTIMIZERS}, got {spec.optimizer!r}"
        )
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


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe YAML file.

    Raises:
        FileNotFoundError: no such file.
        RecipeError: (a ``ValueError``) invalid YAML or an invalid field, named in the message.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"recipe not found: {source}")
    with open(source, encoding="utf-8") as fh:
        try:
            config = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise RecipeError(f"{source}: invalid YAML ({err})") from err
    return Recipe.from_dict(config, source=source)


def save_recipe(
    recipe: Recipe, path: str | os.PathLike[str], *, comment: str | None = None
) -> Path:
    """Write ``recipe`` as a YAML file at ``path`` (atomically); returns the path.

    Relative paths (the data's path fields and a ``model.weights`` file) are rewritten
    relative to the new file's folder, so that they still name the same files; paths that
    start with ``${VAR}`` or ``~`` and absolute paths are kept as written. ``comment`` (lines)
    goes at the top as YAML comments.
    """
    from retdm_keras import zoo

    target = Path(path)
    folder = target.parent.resolve()

    def moved(value: str) -> str:
        if value.startswith(("${", "~")) or os.path.isabs(value):
            return value
        try:
            return os.path.relpath(recipe.base_dir / value, folder)
        except ValueError:  # pragma: no cover - another drive on Windows
            return os.fspath(recipe.base_dir / value)

    config = recipe.to_dict()
    fields = _DATA_FIELDS[recipe.data.format]
    for key, value in config["data"].items():
        if key in fields and fields[key][0] == "path":
            config["data"][key] = moved(value)
    weights = config["model"]["weights"]
    if weights not in (None, "imagenet") and weights.lower() != "none":  # a weights file
        config["model"]["weights"] = moved(weights)
    Recipe.from_dict(config, source=os.fspath(target))  # what is written loads back
    header = "".join(f"# {line}\n" for line in (comment or "").splitlines())
    zoo._write_text(target, header + zoo._recipe_yaml(config) + "\n")
    return target


def find_recipe(name: str, recipes_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The recipe file whose ``name`` is ``name`` (``<dir>/<name>.yaml`` first), or None."""
    folder = Path(recipes_dir) if recipes_dir is not None else RECIPES_DIR
    if not folder.is_dir():
        return None
    direct = folder / f"{name}.yaml"
    candidates = [direct] if direct.is_file() else []
    candidates += [p for p in sorted(folder.glob("*.yaml")) if p != direct]
    for path in candidates:
        try:
            if load_recipe(path).name == name:
                return path
        except (OSError, ValueError):
            continue
    return None


# --------------------------------------------------------------------------- #
# Paths
# --------------------------------------------------------------------------- #
def default_data_dir() -> Path | None:
    """``$RETDM_DATA_DIR``, else ``<repo>/../shared/data`` if it exists, else None."""
    if os.environ.get("RETDM_DATA_DIR"):
        return Path(os.environ["RETDM_DATA_DIR"]).expanduser()
    shared = REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def expand_path(value: str, *, base: str | os.PathLike[str] | None = None, where: str = "") -> Path:
    """Resolve ``${VAR}``, ``~`` and a relative ``value`` (against ``base``).

    Raises:
        RecipeError: an unset variable (``RETDM_DATA_DIR`` falls back to
            :func:`default_data_dir`).
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "RETDM_DATA_DIR":
            folder = default_data_dir()
            if folder is None:
                raise RecipeError(
                    f"{where}: uses ${{RETDM_DATA_DIR}}, which is not set (and "
                    f"{REPO_ROOT.parent / 'shared' / 'data'} does not exist): set it to your data "
                    f"folder"
                )
            return os.fspath(folder)
        if name not in os.environ:
            raise RecipeError(f"{where}: environment variable ${{{name}}} is not set")
        return os.environ[name]

    path = Path(os.path.expanduser(_VARIABLE.sub(substitute, value)))
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #
@dataclass
class TrainData:
    """The datasets of one training run (shared by recipes and the CLI).

    Attributes:
        train: shuffled, augmented training batches with ``index``.
        bank: the training set un-augmented, in order (memory-bank passes).
        val: validation batches, or None.
        test: test batches, or None.
        test_labels: the test labels in batch order when known up front, else None
            (:func:`predict_with_labels` collects them from ``test`` in any case).
        label_names: the label names, in column order.
        sizes: samples per split (a tfds split filtered on the fly counts as -1).
        input_dim: the feature size for ARFF data (``backbone: mlp``), else None.
    """

    train: tf.data.Dataset
    bank: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset | None
    test_labels: np.ndarray | None
    label_names: list[str]
    sizes: dict[str, int]
    input_dim: int | None = None


def split_off_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(train rows, val rows)`` with ``round(fraction * n)`` rows held out.

    >>> split_off_validation(10, 0.2, seed=0)[1].tolist()
    [4, 6]
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"val_fraction {fraction} of {n} samples leaves no train or no val rows")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _files_data(
    train: LabeledFiles,
    train_dir: Path,
    test: LabeledFiles | None,
    test_dir: Path | None,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    val_fraction: float | None = None,
    val: LabeledFiles | None = None,
    cache: bool = False,
) -> TrainData:
    """Image datasets from :class:`LabeledFiles` (validation carved from train if asked)."""
    from retdm_keras.data import image_dataset

    if val_fraction is not None:
        train_rows, val_rows = split_off_validation(len(train), val_fraction, seed)
        train, val = train.subset(train_rows), train.subset(val_rows)
    common = dict(image_size=image_size, batch_size=batch_size, cache=cache)
    sizes = {"train": len(train)}
    train_ds = image_dataset(train_dir, train, training=True, seed=seed, **common)
    bank_ds = image_dataset(train_dir, train, training=False, shuffle=False, **common)
    val_ds = test_ds = None
    if val is not None:
        val_ds = image_dataset(train_dir, val, **common)
        sizes["val"] = len(val)
    if test is not None:
        if test.label_names != train.label_names:
            raise ValueError(
                f"test labels {test.label_names[:5]}... differ from train labels "
                f"{train.label_names[:5]}..."
            )
        test_ds = image_dataset(test_dir, test, **common)
        sizes["test"] = len(test)
    return TrainData(
        train_ds,
        bank_ds,
        val_ds,
        test_ds,
        None if test is None else test.labels,
        list(train.label_names),
        sizes,
    )


def image_folder_data(
    image_dir: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    *,
    split_json: str | os.PathLike[str] | None = None,
    train_split: str | None = None,
    val_split: str | None = None,
    test_split: str | None = None,
    image_size: int = 224,
    batch_size: int = 32,
    seed: int = 0,
    cache: bool = False,
) -> TrainData:
    """Train/val/test datasets from an image folder, an annotation CSV and a split file.

    Without ``split_json`` every row is training data. With it, ``train_split`` defaults to
    ``"train"`` and ``val_split``/``test_split`` to ``"val"``/``"test"`` when the file has
    them.

    Raises:
        FileNotFoundError: the folder, CSV, split file or some images are missing.
        ValueError: a named split is not in the split file.
    """
    from retdm_keras.data import load_split, read_labels_csv

    for path, what in ((labels_csv, "labels CSV"), (split_json, "split file")):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{what} not found: {os.fspath(path)}")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"image folder not found: {os.fspath(image_dir)}")
    files = read_labels_csv(labels_csv)
    val = test = None
    if split_json is None:
        if train_split or val_split or test_split:
            raise ValueError("train_split/val_split/test_split need a split_json")
        train = files
    else:
        splits = load_split(split_json)
        for what, name in (("train_split", train_split), ("val_split", val_split)):
            if name is not None and name not in splits:
                raise ValueError(
                    f"{what} {name!r} is not in {os.fspath(split_json)}; available: "
                    f"{sorted(splits)}"
                )
        if test_split is not None and test_split not in splits:
            raise ValueError(
                f"test_split {test_split!r} is not in {os.fspath(split_json)}; available: "
                f"{sorted(splits)}"
            )
        train_split = train_split or "train"
        if train_split not in splits:
            raise ValueError(
                f"split {train_split!r} is not in {os.fspath(split_json)}; available: "
                f"{sorted(splits)}"
            )
        val_split = val_split or ("val" if "val" in splits else None)
        test_split = test_split or ("test" if "test" in splits else None)
        train = files.subset(splits[train_split])
        val = files.subset(splits[val_split]) if val_split else None
        test = files.subset(splits[test_split]) if test_split else None
    root = Path(image_dir)
    return _files_data(
        train,
        root,
        test,
        root,
        val=val,
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        cache=cache,
    )


def arff_data(
    train_arff: str | os.PathLike[str],
    test_arff: str | os.PathLike[str] | None = None,
    *,
    labels_xml: str | os.PathLike[str] | None = None,
    num_labels: int | None = None,
    val_fraction: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> TrainData:
    """Train/val/test feature datasets from MULAN ARFF files (``backbone: mlp``).

    ``val_fraction`` holds out that share of the training rows (seeded) for validation.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: malformed ARFF, or train and test files that disagree on labels/features.
    """
    from retdm_keras.data import feature_dataset, load_arff

    for path, what in (
        (train_arff, "ARFF file"),
        (test_arff, "ARFF file"),
        (labels_xml, "labels XML"),
    ):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{what} not found: {os.fspath(path)}")
    train = load_arff(train_arff, labels_xml=labels_xml, num_labels=num_labels)
    features, labels = train.features, train.labels
    val_ds = None
    sizes: dict[str, int] = {}
    if val_fraction is not None:
        train_rows, val_rows = split_off_validation(len(train), val_fraction, seed)
        val_ds = feature_dataset(features[val_rows], labels[val_rows], batch_size=batch_size)
        sizes["val"] = len(val_rows)
        features, labels = features[train_rows], labels[train_rows]
    sizes = {"train": len(features), **sizes}
    train_ds = feature_dataset(features, labels, batch_size=batch_size, training=True, seed=seed)
    bank_ds = feature_dataset(features, labels, batch_size=batch_size)
    test_ds = test_labels = None
    if test_arff is not None:
        test = load_arff(test_arff, labels_xml=labels_xml, num_labels=num_labels)
        if test.label_names != train.label_names:
            raise ValueError(
                f"{os.fspath(test_arff)} has labels {test.label_names} but "
                f"{os.fspath(train_arff)} has {train.label_names}"
            )
        if test.num_features != train.num_features:
            raise ValueError(
                f"{os.fspath(test_arff)} has {test.num_features} features but "
                f"{os.fspath(train_arff)} has {train.num_features}"
            )
        test_ds = feature_dataset(test.features, test.labels, batch_size=batch_size)
        test_labels = test.labels
        sizes["test"] = len(test)
    return TrainData(
        train_ds,
        bank_ds,
        val_ds,
        test_ds,
        test_labels,
        list(train.label_names),
        sizes,
        input_dim=train.num_features,
    )


def _tfds_data(recipe: Recipe, image_size: int, batch_size: int, seed: int) -> TrainData:
    from retdm_keras.datasets import coco_2014, load, voc_2007

    data = recipe.data
    name = data.get("name")
    common = dict(data_dir=recipe.path("data_dir"), image_size=image_size, batch_size=batch_size)
    if name.startswith("coco/"):
        get = coco_2014 if name == "coco/2014" else None
    elif name.startswith("voc/"):
        get = voc_2007 if name == "voc/2007" else None
    else:

        def get(split: str, **kwargs: Any):
            return load(name, split, manual_dir=recipe.path("manual_dir"), **kwargs)

    if get is None:
        raise RecipeError(f"data.name: {name!r} is not supported; use coco/2014 or voc/2007")
    train_split = data.get("train_split", "train")
    train = get(train_split, training=True, seed=seed, **common)
    bank = get(train_split, training=False, shuffle=False, **common)
    sizes = {"train": -1 if train.num_examples is None else train.num_examples}
    val = test = None
    if data.get("val_split"):
        val = get(data.get("val_split"), **common)
        sizes["val"] = -1 if val.num_examples is None else val.num_examples
    if data.get("test_split"):
        test = get(data.get("test_split"), **common)
        sizes["test"] = -1 if test.num_examples is None else test.num_examples
    return TrainData(
        train.dataset,
        bank.dataset,
        None if val is None else val.dataset,
        None if test is None else test.dataset,
        None,
        train.label_names,
        sizes,
    )


def build_datasets(recipe: Recipe) -> TrainData:
    """The recipe's train (augmented + bank), val and test datasets.

    Raises:
        FileNotFoundError: data files are missing (the resolved path is quoted).
        RecipeError: a path variable is unset.
    """
    from retdm_keras.data.coco import read_coco_instances
    from retdm_keras.data.yolo import read_yolo_labels

    data, model, training = recipe.data, recipe.model, recipe.training
    if data.format == "arff":
        if model.backbone != "mlp":
            raise RecipeError(f"{recipe.source}: model.backbone: ARFF features need 'mlp'")
        return arff_data(
            recipe.path("train"),
            recipe.path("test"),
            labels_xml=recipe.path("labels_xml"),
            num_labels=data.get("num_labels"),
            val_fraction=data.get("val_fraction"),
            batch_size=training.batch_size,
            seed=training.seed,
        )
    if model.backbone == "mlp":
        raise RecipeError(f"{recipe.source}: model.backbone: 'mlp' needs data.format 'arff'")
    common = dict(
        image_size=model.image_size,
        batch_size=training.batch_size,
        seed=training.seed,
    )
    if data.format == "folder_csv":
        return image_folder_data(
            recipe.path("image_dir"),
            recipe.path("labels"),
            split_json=recipe.path("split_json"),
            train_split=data.get("train_split"),
            val_split=data.get("val_split"),
            test_split=data.get("test_split"),
            cache=bool(data.get("cache", False)),
            **common,
        )
    if data.format == "tfds":
        return _tfds_data(recipe, **common)
    if data.format == "coco":
        train_dir, test_dir = recipe.path("train_images"), recipe.path("test_images")
        train = read_coco_instances(recipe.path("train_annotations"), train_dir)
        test = None
        if recipe.path("test_annotations") is not None:
            test = read_coco_instances(recipe.path("test_annotations"), test_dir)
    else:  # yolo
        names = recipe.path("class_names")
        train_dir, test_dir = recipe.path("train_images"), recipe.path("test_images")
        train = read_yolo_labels(recipe.path("train_labels"), train_dir, names)
        test = None
        if recipe.path("test_labels") is not None:
            test = read_yolo_labels(recipe.path("test_labels"), test_dir, names)
    if test is not None and test_dir is None:
        raise RecipeError(f"{recipe.source}: data.test_images: required with test labels")
    return _files_data(
        train,
        train_dir,
        test,
        test_dir,
        val_fraction=data.get("val_fraction"),
        cache=bool(data.get("cache", False)),
        **common,
    )


# --------------------------------------------------------------------------- #
# Model, optimiser, training
# --------------------------------------------------------------------------- #
def model_kwargs(recipe: Recipe, data: TrainData) -> dict[str, Any]:
    """The ``RETDM`` keyword arguments of the recipe for ``data``: the model section (a
    weights file resolved like a data path) plus ``num_labels``, ``label_names`` and
    ``input_dim`` from the data."""
    kwargs = dataclasses.asdict(recipe.model)
    if isinstance(kwargs["weights"], str) and kwargs["weights"].lower() == "none":
        kwargs["weights"] = None
    elif kwargs["weights"] not in (None, "imagenet"):
        kwargs["weights"] = os.fspath(
            expand_path(kwargs["weights"], base=recipe.base_dir, where="model.weights")
        )
    kwargs.update(
        num_labels=len(data.label_names),
        label_names=list(data.label_names),
        input_dim=data.input_dim,
    )
    return kwargs


def build_model(recipe: Recipe, data: TrainData) -> RETDM:
    """The recipe's ``RETDM`` for ``data`` (label names, and feature size for ARFF).

    Raises:
        WeightsUnavailableError: (a ``RuntimeError``) ``weights: imagenet`` could not be
            loaded (a recipe never falls back to random weights silently).
    """
    from retdm_keras.model import RETDM

    kwargs = model_kwargs(recipe, data)
    try:
        return RETDM(**kwargs)
    except Exception as err:
        if recipe.model.weights != "imagenet":
            raise
        raise WeightsUnavailableError(
            f"ImageNet weights for {recipe.model.backbone!r} could not be loaded "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); put them in "
            f"the Keras cache ($KERAS_HOME/models) or allow the download"
        ) from err


def make_optimizer(training: TrainingSpec) -> Callable[[str, float], keras.optimizers.Optimizer]:
    """``optimizer(stage, learning_rate)`` for ``fit_stages`` from the training spec."""
    import keras

    def optimizer(stage: str, learning_rate: float) -> keras.optimizers.Optimizer:
        if training.optimizer == "sgd":
            return keras.optimizers.SGD(
                learning_rate=learning_rate,
                momentum=training.momentum,
                weight_decay=training.weight_decay or None,
            )
        if training.optimizer == "adam":
            return keras.optimizers.Adam(
                learning_rate=learning_rate, weight_decay=training.weight_decay or None
            )
        return keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=training.weight_decay
        )

    return optimizer


def predict_with_labels(model: RETDM, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, scores)`` of every sample of ``dataset``, in iteration order."""
    labels, scores = [], []
    for x, y in dataset:
        scores.append(np.asarray(model.predict_on_batch(x)))
        labels.append(np.asarray(y))
    if not labels:
        raise ValueError("the test dataset is empty")
    return np.concatenate(labels), np.concatenate(scores)


def _final_logs(histories: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {
        stage: {k: float(v[-1]) for k, v in history.history.items() if v}
        for stage, history in histories.items()
    }


def train_recipe(
    recipe: Recipe | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    verbose: int | str = "auto",
    callbacks: Sequence[Any] = (),
    feature_cache: str | os.PathLike[str] | bool | None = None,
) -> Path:
    """Train a recipe, evaluate it on its test split and write a zoo entry to ``out_dir``.

    Args:
        recipe: a :class:`Recipe` or the path of its YAML file.
        out_dir: the entry folder to write (created; its entry files are replaced).
        verbose: Keras verbosity of ``fit_stages``.
        callbacks: extra Keras callbacks for every stage.
        feature_cache: with ``training.freeze_backbone``: the feature cache folder (default
            ``$KERAS_HOME/retdm_features``; False: none).

    Returns:
        ``out_dir`` as a ``Path``: ``config.json``, ``model.weights.h5``, ``labels.json``,
        ``metrics.json`` (the 12 metrics on the test split), ``metadata.json``, ``README.md``.

    Raises:
        RecipeError: the recipe has no test split (an entry must report test metrics).
    """
    import keras

    from retdm_keras import zoo
    from retdm_keras.metrics import evaluate
    from retdm_keras.training import fit_stages

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    training = recipe.training
    keras.utils.set_random_seed(training.seed)
    data = build_datasets(recipe)
    if data.test is None:
        raise RecipeError(f"{recipe.source or recipe.name}: data: the recipe needs a test split")
    model = build_model(recipe, data)
    started = time.time()
    histories = fit_stages(
        model,
        data.train,
        data.val,
        epochs=training.epochs,
        learning_rates=training.learning_rates,
        optimizer=make_optimizer(training),
        callbacks=callbacks,
        bank_data=data.bank,
        reduce_lr_patience=training.reduce_lr_patience,
        verbose=verbose,
        freeze_backbone=training.freeze_backbone,
        feature_views=training.feature_views,
        feature_cache=feature_cache,
    )
    seconds = time.time() - started
    labels, scores = predict_with_labels(model, data.test)
    metrics = evaluate(labels, scores, model.decision_threshold)
    return zoo.write_entry(
        model,
        out_dir,
        metrics=metrics,
        name=recipe.name,
        dataset=recipe.dataset,
        description=recipe.description,
        recipe=recipe.to_dict(),
        training={
            "sizes": data.sizes,
            "test_samples": int(len(labels)),
            "train_seconds": round(seconds, 1),
            "final_logs": _final_logs(histories),
        },
    )
