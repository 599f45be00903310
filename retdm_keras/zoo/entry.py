"""Zoo entries: a trained checkpoint as a folder, in the spirit of a keras-hub preset::

    config.json        the model's serialized config (``RETDM.get_config`` + class name)
    model.weights.h5   the weights (``model.save_weights``)
    labels.json        the label names, in output order
    metrics.json       the 12 metrics of ``retdm_keras.metrics.evaluate`` on the test split
    README.md          the model card
    metadata.json      library/Keras/TF versions, recipe, date, data set, and the sha256 and
                       size of every other file

An entry trained with a frozen pretrained backbone (``write_entry(...,
backbone_weights="imagenet")``) stores ``heads.weights.h5`` instead of ``model.weights.h5``:
every weight except the backbone's, which is rebuilt from the standard ``keras.applications``
ImageNet file (Keras fetches and caches it, hash-checked). ``metadata.json`` records the
sha256 of the backbone's values, and loading refuses a backbone that differs from the one
the heads were trained on. A MobileNetV2 entry is then about 4 MB instead of 13 MB (the head-weights
format and the backbone check are in :mod:`retdm_keras.zoo.head_weights`).

:func:`write_entry` writes one (each file atomically: a temporary file, then ``os.replace``);
``retdm_keras.recipes.train_recipe`` calls it after training. :func:`verify_entry` checks
one against its ``metadata.json``, :func:`load_entry` builds its model.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retdm_keras.files import atomic_write, jsonable, sha256_file, write_json, write_text, yaml_text
from retdm_keras.zoo.errors import ZooError, ZooHashError, read_zoo_json
from retdm_keras.zoo.head_weights import (
    backbone_sha256,
    check_backbone,
    load_head_weights,
    save_head_weights,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "ENTRY_FILES",
    "HEADS_ENTRY_FILES",
    "HEADS_WEIGHTS_FILE",
    "FORMAT_VERSION",
    "LABELS_FILE",
    "METADATA_FILE",
    "METRICS_FILE",
    "WEIGHTS_FILE",
    "backbone_sha256",
    "entry_files",
    "file_info",
    "file_matches",
    "library_versions",
    "load_entry",
    "load_head_weights",
    "model_card",
    "save_head_weights",
    "verify_entry",
    "weights_file",
    "write_entry",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
HEADS_WEIGHTS_FILE = "heads.weights.h5"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
METADATA_FILE = "metadata.json"
ENTRY_FILES: tuple[str, ...] = (
    CONFIG_FILE,
    WEIGHTS_FILE,
    LABELS_FILE,
    METRICS_FILE,
    CARD_FILE,
    METADATA_FILE,
)
"""The files of an entry folder (``metadata.json`` lists the hashes of the others)."""
HEADS_ENTRY_FILES: tuple[str, ...] = tuple(
    HEADS_WEIGHTS_FILE if f == WEIGHTS_FILE else f for f in ENTRY_FILES
)
"""The files of an entry whose backbone is a reference to pretrained weights."""


def entry_files(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The files an entry with this ``metadata.json`` content must hold."""
    return HEADS_ENTRY_FILES if metadata.get("backbone_weights") else ENTRY_FILES


def weights_file(metadata: Mapping[str, Any]) -> str:
    """The entry's weights file: all weights, or all but the referenced backbone's."""
    return HEADS_WEIGHTS_FILE if metadata.get("backbone_weights") else WEIGHTS_FILE


def file_info(path: Path) -> dict[str, Any]:
    """``{"sha256": ..., "size": ...}`` of a file, as entries and registries record them."""
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def file_matches(path: Path, info: Mapping[str, Any]) -> bool:
    """Whether ``path`` exists with the recorded size and sha256."""
    if not path.is_file():
        return False
    if "size" in info and path.stat().st_size != int(info["size"]):
        return False
    return sha256_file(path) == info["sha256"]


def library_versions() -> dict[str, str]:
    """The versions of retdm_keras, Keras, TensorFlow, NumPy and Python."""
    import keras
    import numpy as np
    import tensorflow as tf

    from retdm_keras.version import __version__

    return {
        "retdm_keras": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _baseline_row(choice: dict[str, Any]) -> list[str]:
    """The card's row on the tuned baseline mixed into the predictions (``fit_stages``)."""
    validation = choice.get("validation", {})

    def ap(weight: str) -> str:
        score = validation.get(weight, {}).get("average_precision")
        return "?" if score is None else f"{score:.4f}"

    share = f"{choice.get('weight', 0):g}"
    return [
        f"| predictions | RETDM mixed with a tuned per-label logistic regression, share "
        f"β = {share} (C = {choice.get('C', 0):g}), chosen on {choice.get('val_rows', '?')} "
        f"validation samples: AP {ap('0')} alone, {ap('1')} baseline, {ap(share)} mixed |"
    ]


def model_card(metadata: Mapping[str, Any], metrics: Mapping[str, float]) -> str:
    """The Markdown model card of an entry (what ``README.md`` holds)."""
    from retdm_keras.metrics import format_table

    name = metadata["name"]
    model = metadata.get("model", {})
    labels = metadata.get("label_names") or []
    versions = metadata.get("library", {})
    training = metadata.get("training") or {}
    recipe = metadata.get("recipe")
    if model.get("backbone") == "mlp":
        inputs = f"feature vectors of size {model.get('input_shape', ['?'])[0]}"
    else:
        inputs = f"RGB images, {'×'.join(map(str, model.get('input_shape', [])[:2]))} px, [0, 255]"
    lines = [
        f"# {name}",
        "",
        metadata.get("description") or "A RETDM multi-label classifier.",
        "",
        "| | |",
        "|---|---|",
        f"| data set | {metadata.get('dataset') or '-'} |",
        f"| backbone | {model.get('backbone', '-')} |",
        f"| input | {inputs} |",
        f"| labels ({len(labels)}) | {', '.join(map(str, labels))} |",
        *(
            [
                f"| weights | the heads only; the backbone is the standard keras.applications "
                f"`{metadata['backbone_weights'].get('weights')}` file, fetched and cached by "
                "Keras |"
            ]
            if metadata.get("backbone_weights")
            else []
        ),
        *(_baseline_row(training.get("baseline")) if training.get("baseline") else []),
        f"| created | {metadata.get('created', '-')} |",
        f"| software | retdm_keras {versions.get('retdm_keras', '?')}, Keras "
        f"{versions.get('keras', '?')}, TensorFlow {versions.get('tensorflow', '?')} |",
        "",
        "## Use",
        "",
        "```python",
        "from retdm_keras import zoo",
        f'model = zoo.load("{name}")          # or zoo.load("path/to/this/folder")',
        "probabilities = model.predict(inputs)",
        "names = model.predict_labels(inputs)",
        "```",
        "",
    ]
    sizes = training.get("sizes") or {}
    tested = training.get("test_samples", sizes.get("test", "?"))
    lines += [
        f"## Test metrics ({tested} test samples, threshold {model.get('threshold', 0.5)})",
        "",
        "```",
        format_table({k: (math.nan if v is None else v) for k, v in metrics.items()}),
        "```",
        "",
    ]
    if sizes:
        lines += [
            "Samples: "
            + ", ".join(f"{k} {v}" for k, v in sizes.items())
            + (
                f"; training took {training['train_seconds']} s"
                if "train_seconds" in training
                else ""
            )
            + ".",
            "",
        ]
    lines += ["## Reproduce", ""]
    if recipe:
        lines += [
            f"Save the recipe below as `{name}.yaml` (a built-in recipe also goes by its name, "
            f"`--recipe {name}`), then:",
            "",
            "```",
            f"retdm-keras train --recipe {name}.yaml --out DIR",
            "retdm-keras publish DIR",
            "```",
            "",
            "The recipe:",
            "",
            "```yaml",
            yaml_text(recipe),
            "```",
            "",
        ]
    else:
        lines += ["No recipe was recorded with this checkpoint.", ""]
    lines += [
        "## Limitations",
        "",
        f"Trained and evaluated only on {metadata.get('dataset') or 'its data set'}: the "
        "labels above are the only ones it can predict, and its scores are calibrated to that "
        "data (threshold 0.5 unless the config stores others). Check the data set's license "
        "before using the model commercially.",
        "",
    ]
    return "\n".join(lines)


def write_entry(
    model: RETDM,
    entry_dir: str | os.PathLike[str],
    *,
    metrics: Mapping[str, float],
    name: str,
    dataset: str = "",
    description: str = "",
    recipe: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    backbone_weights: str | None = None,
) -> Path:
    """Write ``model`` as a zoo entry folder; returns the folder.

    Args:
        model: a trained ``RETDM``.
        entry_dir: the folder (created; the entry files in it are replaced atomically).
        metrics: the ``evaluate`` results on the test split.
        name: the zoo name (recipes use theirs).
        dataset: a human-readable data-set name.
        description: one line for the model card.
        recipe: the recipe as plain data (``Recipe.to_dict()``).
        training: extra facts for ``metadata.json`` (sizes, time, final logs).
        backbone_weights: ``"imagenet"`` for a model whose backbone kept its pretrained
            ``keras.applications`` weights (frozen-backbone training): the entry then
            stores only the other weights (``heads.weights.h5``) and rebuilds the backbone
            from that standard file when loaded. ``None``: store all weights.
    """
    import keras

    if backbone_weights not in (None, "imagenet"):
        raise ValueError(f"backbone_weights must be None or 'imagenet', got {backbone_weights!r}")
    if backbone_weights and model.backbone in ("mlp",):
        raise ValueError(f"backbone {model.backbone!r} has no pretrained weights to refer to")
    folder = Path(entry_dir)
    folder.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config = {k: config[k] for k in ("module", "class_name", "config", "registered_name")}
    if backbone_weights:
        config["config"] = {**config["config"], "weights": backbone_weights}
    write_json(folder / CONFIG_FILE, config)
    if backbone_weights:
        atomic_write(
            folder / HEADS_WEIGHTS_FILE,
            lambda tmp: save_head_weights(model, tmp),
            suffix=".weights.h5",
        )
    else:
        atomic_write(folder / WEIGHTS_FILE, model.save_weights, suffix=".weights.h5")
    labels = model.label_names or [str(j) for j in range(model.num_labels)]
    write_json(folder / LABELS_FILE, labels)
    write_json(folder / METRICS_FILE, dict(metrics))
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "dataset": dataset,
        "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "library": library_versions(),
        "model": {
            "class_name": type(model).__name__,
            "backbone": model.backbone,
            "num_labels": model.num_labels,
            "input_shape": list(model.input_shape_without_batch),
            "threshold": model.decision_threshold,
        },
        "label_names": labels,
        "recipe": None if recipe is None else dict(recipe),
        "training": None if training is None else dict(training),
    }
    if backbone_weights:
        metadata["backbone_weights"] = {
            "source": "keras.applications",
            "weights": backbone_weights,
            "sha256": backbone_sha256(model),
        }
    write_text(folder / CARD_FILE, model_card(metadata, jsonable(dict(metrics))))
    metadata["files"] = {
        f: file_info(folder / f) for f in entry_files(metadata) if f != METADATA_FILE
    }
    write_json(folder / METADATA_FILE, metadata)
    return folder


def verify_entry(entry_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Check that an entry folder is complete and its files match ``metadata.json``.

    Returns:
        The metadata.

    Raises:
        ZooError: a missing folder or file.
        ZooHashError: a file whose sha256 differs from the metadata's.
    """
    folder = Path(entry_dir)
    if not folder.is_dir():
        raise ZooError(f"zoo entry folder not found: {folder}")
    if not (folder / METADATA_FILE).is_file():
        raise ZooError(f"{folder} is not a complete zoo entry: missing {METADATA_FILE}")
    metadata = read_zoo_json(folder / METADATA_FILE)
    if not isinstance(metadata, dict):
        raise ZooError(f"{folder / METADATA_FILE}: not a JSON object")
    expected = entry_files(metadata)
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing:
        raise ZooError(f"{folder} is not a complete zoo entry: missing {', '.join(missing)}")
    files = metadata.get("files")
    if not isinstance(files, dict) or set(files) != set(expected) - {METADATA_FILE}:
        raise ZooError(f"{folder / METADATA_FILE}: 'files' must list {expected[:-1]}")
    bad = [f for f, info in files.items() if sha256_file(folder / f) != info.get("sha256")]
    if bad:
        raise ZooHashError(
            f"{folder}: sha256 of {', '.join(bad)} differs from {METADATA_FILE} "
            f"(modified or corrupted)"
        )
    return metadata


def load_entry(entry_dir: str | os.PathLike[str], *, verify: bool = True) -> RETDM:
    """Build the model of an entry folder from its config and load its weights.

    Raises:
        ZooError: an incomplete entry, or a config/weights pair that does not load.
        ZooHashError: with ``verify``, a file that does not match ``metadata.json``.
    """
    import keras

    # the Keras classes are registered: retdm_keras/__init__ ran before this module was imported
    from retdm_keras.model import RETDM

    folder = Path(entry_dir)
    metadata = verify_entry(folder) if verify else read_zoo_json(folder / METADATA_FILE)
    reference = metadata.get("backbone_weights") if isinstance(metadata, dict) else None
    config = read_zoo_json(folder / CONFIG_FILE)
    try:
        model = keras.saving.deserialize_keras_object(config)
        if not isinstance(model, RETDM):
            raise ZooError(f"{folder / CONFIG_FILE} describes a {type(model).__name__}, not RETDM")
        if reference:
            check_backbone(model, reference, folder)
            load_head_weights(model, folder / HEADS_WEIGHTS_FILE)
        else:
            model.load_weights(folder / WEIGHTS_FILE)
    except ZooError:
        raise
    except Exception as err:
        raise ZooError(f"{folder}: the config and weights do not load: {err}") from err
    return model
