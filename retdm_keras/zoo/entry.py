"""The RETDM model zoo: entry folders, a registry, and hash-checked, cached downloads.

**Entries.** A trained checkpoint is a folder, in the spirit of a keras-hub preset::

    config.json        the model's serialized config (``RETDM.get_config`` + class name)
    model.weights.h5   the weights (``model.save_weights``)
    labels.json        the label names, in output order
    metrics.json       the 12 metrics of ``retdm_keras.metrics.evaluate`` on the test split
    README.md          the model card
    metadata.json      library/Keras/TF versions, recipe, date, data set, and the sha256 and
                       size of every other file

:func:`write_entry` writes one (each file atomically: a temporary file, then ``os.replace``);
``retdm_keras.recipes.train_recipe`` calls it after training.

**Registry.** :func:`publish` checks an entry (files present, hashes equal to
``metadata.json``, the config builds a model that takes the weights) and records it in
``zoo/registry.json``: name, version, each file's sha256 and size, metrics, recipe, and the
entry folder when it sits in the repository. Downloads use the registry's
``url_template``, ``{base_url}/{name}/{version}/{file}``; ``$RETDM_ZOO_URL`` overrides
``base_url``.

**Loading.** :func:`load` takes an entry folder, or a registry name (``"scene-features"``,
or ``"scene-features@1"`` for a version). Files come from the cache,
``$KERAS_HOME/retdm_zoo/<name>/<version>/`` (or ``cache_dir``), else are copied from the
registered local entry, else downloaded with ``keras.utils.get_file(..., file_hash=sha256)``.
Every file is checked against the registry's sha256; a mismatch (a truncated, corrupted or
tampered file) is a :class:`ZooHashError` and the bad file is never left in the cache. A
failed download (HTTP 404/500, a dropped connection) is a :class:`ZooError` naming the file,
the URL and the status; each download goes to a staging folder and is renamed into place only
once verified, so the cache never holds half a file. A cache folder that cannot be written is
a :class:`ZooError` saying so (pass ``cache_dir``). ``offline=True`` (or
``RETDM_ZOO_OFFLINE=1``) never downloads. A name that only has a recipe raises
:class:`NoCheckpointError` with the commands that make the checkpoint; the zoo never hands out
a randomly initialised model.

    >>> from retdm_keras import zoo
    >>> print(zoo.format_zoo_table(zoo.list_models()))      # doctest: +SKIP
    name            version  status       mAP     O-F1    C-F1    dataset
    scene-features  1        local        0.8...
    coco            -        recipe only  -       -       -       MS-COCO 2014 ...
    >>> model = zoo.load("scene-features")                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM

__all__ = [
    "ENTRY_FILES",
    "NoCheckpointError",
    "ZooError",
    "ZooHashError",
    "default_cache_dir",
    "default_registry_path",
    "fetch",
    "format_zoo_table",
    "list_models",
    "load",
    "load_entry",
    "model_card",
    "publish",
    "read_registry",
    "verify_entry",
    "write_entry",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
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

URL_TEMPLATE = "{base_url}/{name}/{version}/{file}"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = REPO_ROOT / "zoo" / "registry.json"
_CARD_METRICS = ("mAP", "O-F1", "C-F1")


class ZooError(ValueError):
    """A zoo entry, registry or download problem (the message says which and what to do)."""


class ZooHashError(ZooError):
    """A file whose sha256 differs from the one recorded for it."""


class NoCheckpointError(ZooError, LookupError):
    """A zoo name with a recipe but no published checkpoint."""


# --------------------------------------------------------------------------- #
# Small helpers: hashes, JSON, atomic writes
# --------------------------------------------------------------------------- #
def _sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_info(path: Path) -> dict[str, Any]:
    return {"sha256": _sha256(path), "size": path.stat().st_size}


def _matches(path: Path, info: Mapping[str, Any]) -> bool:
    """Whether ``path`` exists with the recorded size and sha256."""
    if not path.is_file():
        return False
    if "size" in info and path.stat().st_size != int(info["size"]):
        return False
    return _sha256(path) == info["sha256"]


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as numbers and NaN/inf as ``None`` (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic_write(path: Path, write: Callable[[str], None], suffix: str = "") -> None:
    """``write(tmp)`` to a temporary file next to ``path``, then ``os.replace`` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic_write(path, write)


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise ZooError(f"{path}: invalid JSON ({err})") from err


def _versions() -> dict[str, str]:
    import keras
    import numpy as np
    import tensorflow as tf

    import retdm_keras

    return {
        "retdm_keras": retdm_keras.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- #
# Entries
# --------------------------------------------------------------------------- #
def _recipe_yaml(recipe: Mapping[str, Any]) -> str:
    """The recipe as YAML: block mappings, lists of scalars inline (``epochs: [4, 1, 2]``)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(
        list, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
    )
    return yaml.dump(dict(recipe), Dumper=Dumper, sort_keys=False, width=100).rstrip()


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
            "```",
            f"retdm-keras train --recipe recipes/{name}.yaml --out DIR",
            "retdm-keras publish DIR",
            "```",
            "",
            "The recipe:",
            "",
            "```yaml",
            _recipe_yaml(recipe),
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
    """
    import keras

    folder = Path(entry_dir)
    folder.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config = {k: config[k] for k in ("module", "class_name", "config", "registered_name")}
    _write_json(folder / CONFIG_FILE, config)
    _atomic_write(folder / WEIGHTS_FILE, model.save_weights, suffix=".weights.h5")
    labels = model.label_names or [str(j) for j in range(model.num_labels)]
    _write_json(folder / LABELS_FILE, labels)
    _write_json(folder / METRICS_FILE, dict(metrics))
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "dataset": dataset,
        "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "library": _versions(),
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
    _write_text(folder / CARD_FILE, model_card(metadata, _jsonable(dict(metrics))))
    metadata["files"] = {f: _file_info(folder / f) for f in ENTRY_FILES if f != METADATA_FILE}
    _write_json(folder / METADATA_FILE, metadata)
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
    missing = [f for f in ENTRY_FILES if not (folder / f).is_file()]
    if missing:
        raise ZooError(f"{folder} is not a complete zoo entry: missing {', '.join(missing)}")
    metadata = _read_json(folder / METADATA_FILE)
    files = metadata.get("files") if isinstance(metadata, dict) else None
    if not isinstance(files, dict) or set(files) != set(ENTRY_FILES) - {METADATA_FILE}:
        raise ZooError(f"{folder / METADATA_FILE}: 'files' must list {ENTRY_FILES[:-1]}")
    bad = [f for f, info in files.items() if _sha256(folder / f) != info.get("sha256")]
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

    import retdm_keras  # noqa: F401  (registers the serializable classes)
    from retdm_keras.model import RETDM

    folder = Path(entry_dir)
    if verify:
        verify_entry(folder)
    config = _read_json(folder / CONFIG_FILE)
    try:
        model = keras.saving.deserialize_keras_object(config)
        if not isinstance(model, RETDM):
            raise ZooError(f"{folder / CONFIG_FILE} describes a {type(model).__name__}, not RETDM")
        model.load_weights(folder / WEIGHTS_FILE)
    except ZooError:
        raise
    except Exception as err:
        raise ZooError(f"{folder}: the config and weights do not load: {err}") from err
    return model


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
def default_registry_path() -> Path:
    """``$RETDM_ZOO_REGISTRY``, else the repository's ``zoo/registry.json``."""
    env = os.environ.get("RETDM_ZOO_REGISTRY")
    return Path(env).expanduser() if env else DEFAULT_REGISTRY


def default_cache_dir() -> Path:
    """``$KERAS_HOME/retdm_zoo`` (Keras's own cache convention; ``~/.keras`` by default)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "retdm_zoo"


def read_registry(registry: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The registry's content (an empty registry when the file does not exist)."""
    path = Path(registry) if registry is not None else default_registry_path()
    if not path.is_file():
        return {
            "format_version": FORMAT_VERSION,
            "base_url": None,
            "url_template": URL_TEMPLATE,
            "models": {},
        }
    content = _read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("models"), dict):
        raise ZooError(f"{path}: not a zoo registry (no 'models' mapping)")
    return content


def _next_version(versions: Mapping[str, Any], files: Mapping[str, Any]) -> str:
    """The version of identical files already published, else one more than the highest."""
    for version, record in versions.items():
        old = record.get("files", {})
        if all(
            old.get(f, {}).get("sha256") == files[f]["sha256"] for f in (CONFIG_FILE, WEIGHTS_FILE)
        ):
            return version
    numbers = [int(v) for v in versions if str(v).isdigit()]
    return str(max(numbers, default=0) + 1)


def _relative_to_registry(entry: Path, registry: Path) -> str:
    """The entry folder relative to the registry when both live in one tree, else absolute."""
    entry, root = entry.resolve(), registry.resolve().parent.parent
    try:
        entry.relative_to(root)
    except ValueError:
        return os.fspath(entry)
    return os.path.relpath(entry, registry.resolve().parent)


def publish(
    entry_dir: str | os.PathLike[str],
    *,
    registry: str | os.PathLike[str] | None = None,
    name: str | None = None,
    version: str | None = None,
    base_url: str | None = None,
    write_card: bool = True,
) -> dict[str, Any]:
    """Validate an entry folder and add (or update) it in the registry.

    Args:
        entry_dir: the entry folder (from ``train_recipe`` or :func:`write_entry`).
        registry: the registry file (created if missing); default ``$RETDM_ZOO_REGISTRY``,
            else the repository's ``zoo/registry.json``.
        name: the zoo name (default: the entry's).
        version: the version (default: the version already holding these exact files,
            else the next integer).
        base_url: set the registry's download base URL (files are then expected at
            ``{base_url}/{name}/{version}/{file}``).
        write_card: also write the model card to ``<registry folder>/<name>/README.md``.

    Returns:
        The registry record of this version.

    Raises:
        ZooError / ZooHashError: the entry is incomplete, modified, or does not load.
    """
    folder = Path(entry_dir)
    metadata = verify_entry(folder)
    load_entry(folder, verify=False)  # the config builds a model that takes the weights
    path = Path(registry) if registry is not None else default_registry_path()
    content = read_registry(path)
    name = name or metadata["name"]
    files = {f: _file_info(folder / f) for f in ENTRY_FILES}
    model = content["models"].setdefault(name, {"latest": None, "versions": {}})
    version = str(version) if version is not None else _next_version(model["versions"], files)
    record = {
        "name": name,
        "version": version,
        "dataset": metadata.get("dataset", ""),
        "description": metadata.get("description", ""),
        "published": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "created": metadata.get("created"),
        "library": metadata.get("library"),
        "backbone": metadata.get("model", {}).get("backbone"),
        "label_names": metadata.get("label_names"),
        "metrics": _read_json(folder / METRICS_FILE),
        "recipe": metadata.get("recipe"),
        "files": files,
        "local_dir": _relative_to_registry(folder, path),
    }
    model["versions"][version] = record
    model["latest"] = max(model["versions"], key=lambda v: (str(v).isdigit(), _version_key(v)))
    if base_url is not None:
        content["base_url"] = base_url.rstrip("/")
    content.setdefault("url_template", URL_TEMPLATE)
    content["format_version"] = FORMAT_VERSION
    content["models"] = dict(sorted(content["models"].items()))
    _write_json(path, content)
    card_path = path.parent / name / CARD_FILE
    # the entry's own README is hashed in its metadata: never overwrite it with the card
    if write_card and card_path.resolve() != (folder / CARD_FILE).resolve():
        card = (folder / CARD_FILE).read_text(encoding="utf-8")
        card += "\n## Files (version " + version + ")\n\n| file | bytes | sha256 |\n|---|---|---|\n"
        card += "".join(f"| {f} | {i['size']} | `{i['sha256']}` |\n" for f, i in files.items())
        _write_text(card_path, card)
    return record


def _version_key(version: str) -> tuple:
    return (int(version),) if str(version).isdigit() else (0, str(version))


# --------------------------------------------------------------------------- #
# Fetching and loading
# --------------------------------------------------------------------------- #
def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("RETDM_ZOO_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _recipe_hint(name: str) -> str | None:
    from retdm_keras.recipes import find_recipe

    path = find_recipe(name)
    if path is None:
        return None
    try:
        shown = os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        shown = os.fspath(path)
    if shown.startswith(".."):
        shown = os.fspath(path)
    return shown


def _record(content: Mapping[str, Any], name: str, version: str | None, where: Path) -> dict:
    """The registry record of ``name`` (latest or ``version``), or an explanatory error."""
    model = content["models"].get(name)
    if model is None or not model.get("versions"):
        recipe = _recipe_hint(name)
        if recipe is not None:
            raise NoCheckpointError(
                f"no published checkpoint for {name!r} (only a recipe); make one with "
                f"`retdm-keras train --recipe {recipe} --out DIR`, then `retdm-keras publish DIR`"
            )
        known = sorted(content["models"])
        raise ZooError(f"unknown zoo model {name!r}; published in {where}: {known or 'none'}")
    version = version or model.get("latest")
    if version not in model["versions"]:
        raise ZooError(
            f"{name!r} has no version {version!r}; versions: {sorted(model['versions'])}"
        )
    return model["versions"][version]


def _failure(err: BaseException) -> str:
    """What went wrong in a download, e.g. ``HTTP 404 Not Found``, from the error chain."""
    import urllib.error

    cause: BaseException | None = err
    for _ in range(8):
        if cause is None or isinstance(cause, urllib.error.URLError):
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, urllib.error.HTTPError):
        return f"HTTP {cause.code} {cause.reason}"
    if isinstance(cause, urllib.error.ContentTooShortError):
        return f"the connection closed early ({cause.reason})"
    if isinstance(cause, urllib.error.URLError):
        return str(cause.reason)
    return (str(err) or type(err).__name__).splitlines()[0]


def _download(url: str, target: Path, sha256: str, size: int | None = None) -> None:
    """Download ``url`` to ``target`` via a staging folder; nothing stays on any failure.

    The file is checked (size, sha256) in the staging folder and only then renamed into
    place, so the cache never holds a partial, truncated or tampered file.
    """
    import keras

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".download-", dir=target.parent)
    try:
        try:
            fetched = keras.utils.get_file(
                fname=target.name, origin=url, cache_dir=staging, cache_subdir=""
            )
        except Exception as err:
            raise ZooError(
                f"download of {target.name} failed: {_failure(err)} ({url}); "
                f"no partial file was kept in {target.parent}"
            ) from err
        got = os.path.getsize(fetched)
        if _sha256(fetched) != sha256:
            length = "" if size is None or got == size else f"; {got} bytes, expected {size}"
            raise ZooHashError(
                f"{url}: sha256 does not match the registry ({sha256[:16]}...{length}): "
                f"truncated, corrupted or tampered download, not kept"
            )
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prepare_cache(folder: Path, stale: Sequence[str]) -> None:
    """Create ``folder``, remove its ``stale`` files, and check it takes new files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in stale:
            if (folder / name).exists() or (folder / name).is_symlink():
                (folder / name).unlink()  # stale or corrupted: never trusted
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise ZooError(
            f"the zoo cache folder {folder} is not writable ({err.strerror or err}): pass "
            f"cache_dir= a writable folder, or set KERAS_HOME"
        ) from err


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def _local_dir(record: Mapping[str, Any], registry: Path) -> Path | None:
    local = record.get("local_dir")
    if not local:
        return None
    path = Path(local)
    return path if path.is_absolute() else registry.resolve().parent / path


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    registry: str | os.PathLike[str] | None = None,
) -> Path:
    """Make the files of registry model ``name`` (``"name@version"``) present in the cache.

    Order: valid cached files; else the registered local entry folder; else a download
    from ``$RETDM_ZOO_URL`` (or the registry's ``base_url``), unless offline.

    Returns:
        The cached entry folder ``<cache>/<name>/<version>``.
    """
    name, _, version = name.partition("@")
    path = Path(registry) if registry is not None else default_registry_path()
    content = read_registry(path)
    record = _record(content, name, version or None, path)
    version = record["version"]
    target = Path(cache_dir or default_cache_dir()) / name / version
    files: dict[str, dict] = record["files"]
    needed = [file for file, info in files.items() if not _matches(target / file, info)]
    if needed:
        _prepare_cache(target, needed)
    local = _local_dir(record, path)
    if needed and local is not None and local.is_dir():
        for file in list(needed):
            if _matches(local / file, files[file]):
                _copy(local / file, target / file)
                needed.remove(file)
    if not needed:
        return target
    if _offline(offline):
        raise ZooError(
            f"{name} version {version}: {', '.join(needed)} not in the cache {target} and "
            f"offline mode is on (offline=True or RETDM_ZOO_OFFLINE=1)"
        )
    base_url = os.environ.get("RETDM_ZOO_URL") or content.get("base_url")
    if not base_url:
        raise ZooError(
            f"{name} version {version} is not cached and the registry has no download URL: "
            f"set RETDM_ZOO_URL to the zoo's base URL"
        )
    template = content.get("url_template") or URL_TEMPLATE
    for file in needed:
        url = template.format(base_url=base_url.rstrip("/"), name=name, version=version, file=file)
        _download(url, target / file, files[file]["sha256"], files[file].get("size"))
    return target


def load(
    name_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    registry: str | os.PathLike[str] | None = None,
) -> RETDM:
    """A zoo model: an entry folder, or a registry name (``"name"`` / ``"name@version"``).

    Args:
        name_or_path: an entry folder, or a name in the registry.
        cache_dir: cache root (default ``$KERAS_HOME/retdm_zoo``).
        offline: never download (default: ``$RETDM_ZOO_OFFLINE``).
        registry: the registry file (default ``$RETDM_ZOO_REGISTRY`` or ``zoo/registry.json``).

    Raises:
        NoCheckpointError: the name only has a recipe (the message gives the commands).
        ZooHashError: a file does not match its recorded sha256.
        ZooError: unknown name, offline without a cached copy, download failure.
    """
    path = Path(os.path.expanduser(os.fspath(name_or_path)))
    if path.is_dir():
        return load_entry(path)
    text = os.fspath(name_or_path)
    if os.sep in text or text.startswith("."):
        raise ZooError(f"zoo entry folder not found: {text}")
    return load_entry(fetch(text, cache_dir=cache_dir, offline=offline, registry=registry))


def list_models(
    *,
    registry: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    recipes_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per zoo name: published checkpoints and recipes without one.

    Each row: ``name``, ``version``, ``status``, ``dataset``, ``metrics``, ``recipe``.
    ``status`` is ``"cached"`` (all files valid in the cache), ``"local"`` (the registered
    entry folder is here), ``"downloadable"`` (a download URL is known), ``"unavailable"``
    (published, but none of these) or ``"recipe only"`` (no checkpoint published).
    """
    from retdm_keras.recipes import RECIPES_DIR, load_recipe

    path = Path(registry) if registry is not None else default_registry_path()
    content = read_registry(path)
    cache = Path(cache_dir or default_cache_dir())
    base_url = os.environ.get("RETDM_ZOO_URL") or content.get("base_url")
    rows = []
    for name, model in content["models"].items():
        record = model["versions"][model["latest"]]
        files = record["files"]
        local = _local_dir(record, path)
        if all(_matches(cache / name / record["version"] / f, i) for f, i in files.items()):
            status = "cached"
        elif local is not None and all(_matches(local / f, i) for f, i in files.items()):
            status = "local"
        else:
            status = "downloadable" if base_url else "unavailable"
        recipe = record.get("recipe") or {}
        rows.append(
            {
                "name": name,
                "version": record["version"],
                "status": status,
                "dataset": record.get("dataset") or recipe.get("dataset", ""),
                "metrics": record.get("metrics"),
                "recipe": None,
            }
        )
    published = {row["name"] for row in rows}
    folder = Path(recipes_dir) if recipes_dir is not None else RECIPES_DIR
    for recipe_path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            recipe = load_recipe(recipe_path)
        except (OSError, ValueError):
            continue
        for row in rows:
            if row["name"] == recipe.name:
                row["recipe"] = os.fspath(recipe_path)
        if recipe.name not in published:
            rows.append(
                {
                    "name": recipe.name,
                    "version": None,
                    "status": "recipe only",
                    "dataset": recipe.dataset,
                    "metrics": None,
                    "recipe": os.fspath(recipe_path),
                }
            )
            published.add(recipe.name)
    return rows


def format_zoo_table(rows: Sequence[Mapping[str, Any]], *, digits: int = 3) -> str:
    """Render :func:`list_models` rows as a plain-text table."""
    header = ["name", "version", "status", *_CARD_METRICS, "dataset"]
    table = [header]
    for row in rows:
        metrics = row.get("metrics") or {}
        cells = []
        for metric in _CARD_METRICS:
            value = metrics.get(metric)
            cells.append("-" if value is None else f"{float(value):.{digits}f}")
        dataset = str(row.get("dataset") or "")
        table.append(
            [
                str(row["name"]),
                str(row.get("version") or "-"),
                str(row["status"]),
                *cells,
                dataset if len(dataset) <= 48 else dataset[:45] + "...",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )
