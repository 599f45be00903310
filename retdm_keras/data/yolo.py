"""YOLO label folders (Ultralytics / darknet layout) as a multi-label image set.

A YOLO detection set keeps one text file per image, with the same relative path and stem::

    images/train2017/000000000009.jpg   <->   labels/train2017/000000000009.txt
    labels/train2017/000000000009.txt:  "45 0.479 0.688 0.955 0.595"   (class x y w h)

and the class names in a YAML file (``names:`` as a list, or as ``{id: name}``)::

    names:
      0: person
      1: bicycle

An image is positive for class ``c`` when its label file has a line starting with ``c``
(boxes and segments are ignored). An existing but empty label file is an image without
objects (an all-zero row). Real folders are rarely perfectly paired: an image without a label
file or a label file without an image is *skipped*, and :func:`read_yolo_labels` says how
many (:func:`scan_yolo_labels` returns the skipped paths).

Example, with the result fed to the same pipeline as an annotation CSV::

    files = read_yolo_labels("coco/labels/train2017", "coco/images/train2017", "coco.yaml")
    ds = image_dataset("coco/images/train2017", files, image_size=224, training=True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from retdm_keras.data.labels import LabeledFiles

__all__ = [
    "IMAGE_EXTENSIONS",
    "YoloScan",
    "read_class_names",
    "read_yolo_labels",
    "scan_yolo_labels",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
"""Image suffixes paired with label files (the formats ``tf.io.decode_image`` reads)."""


@dataclass(frozen=True)
class YoloScan:
    """The outcome of pairing a YOLO label folder with its image folder.

    Attributes:
        files: the paired images (paths relative to the image folder) and their labels.
        images_without_labels: image paths (relative) that have no label file.
        labels_without_images: label-file paths (relative) that have no image.
    """

    files: LabeledFiles
    images_without_labels: list[str]
    labels_without_images: list[str]

    def summary(self) -> str:
        """One line: how many images were kept and how many files were skipped."""
        return (
            f"{len(self.files)} labelled images; skipped {len(self.images_without_labels)} "
            f"image(s) without a label file and {len(self.labels_without_images)} label "
            f"file(s) without an image"
        )


def read_class_names(yaml_path: str | os.PathLike[str]) -> list[str]:
    """Class names from a YOLO dataset YAML (``names`` as a list or ``{id: name}``).

    Raises:
        ValueError: no ``names`` entry, or ids that are not exactly ``0..N-1``.
    """
    path = os.fspath(yaml_path)
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    names = config.get("names") if isinstance(config, dict) else None
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    if isinstance(names, dict) and names:
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: 'names' keys must be integer class ids") from err
        if ids != list(range(len(ids))):
            raise ValueError(f"{path}: 'names' ids must be 0..{len(ids) - 1}, got {ids[:10]}")
        by_id = {int(k): str(v) for k, v in names.items()}
        return [by_id[i] for i in ids]
    raise ValueError(f"{path}: expected a non-empty 'names' list or mapping")


def _relative_stems(root: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """``{relative path without suffix: relative path}`` of the files under ``root``."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes:
            rel = path.relative_to(root).as_posix()
            out.setdefault(rel[: -len(path.suffix)], rel)
    return out


def _read_label_file(path: Path, num_classes: int) -> set[int]:
    classes: set[int] = set()
    with open(path, encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                value = float(tokens[0])
            except ValueError:
                value = float("nan")
            if not value.is_integer():
                raise ValueError(
                    f"{path}, line {line_number}: class id {tokens[0]!r} is not an integer"
                )
            class_id = int(value)
            if not 0 <= class_id < num_classes:
                raise ValueError(
                    f"{path}, line {line_number}: class id {class_id} outside 0..{num_classes - 1}"
                )
            classes.add(class_id)
    return classes


def scan_yolo_labels(
    labels_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    class_names_yaml: str | os.PathLike[str],
) -> YoloScan:
    """Pair label files with images and read their classes; see :func:`read_yolo_labels`."""
    labels_root, images_root = Path(labels_dir), Path(images_dir)
    for folder, what in ((labels_root, "label"), (images_root, "image")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder {os.fspath(folder)!r} does not exist")
    names = read_class_names(class_names_yaml)
    label_files = _relative_stems(labels_root, (".txt",))
    images = _relative_stems(images_root, IMAGE_EXTENSIONS)
    paired = sorted(set(label_files) & set(images))
    labels = np.zeros((len(paired), len(names)), np.float32)
    for row, stem in enumerate(paired):
        for class_id in _read_label_file(labels_root / label_files[stem], len(names)):
            labels[row, class_id] = 1.0
    files = LabeledFiles([images[s] for s in paired], labels, names, source=os.fspath(labels_root))
    return YoloScan(
        files=files,
        images_without_labels=[images[s] for s in sorted(set(images) - set(label_files))],
        labels_without_images=[label_files[s] for s in sorted(set(label_files) - set(images))],
    )


def read_yolo_labels(
    labels_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    class_names_yaml: str | os.PathLike[str],
    *,
    verbose: bool = True,
) -> LabeledFiles:
    """Read a YOLO label folder into multi-hot :class:`LabeledFiles`.

    Args:
        labels_dir: folder of ``.txt`` label files (searched recursively).
        images_dir: the matching image folder; label ``a/b.txt`` pairs with ``a/b.jpg``
            (or another suffix of :data:`IMAGE_EXTENSIONS`).
        class_names_yaml: the dataset YAML with ``names``.
        verbose: print how many images were kept and how many files were skipped, when
            any were.

    Returns:
        One row per image that has a label file, sorted by path; ``filenames`` are relative
        to ``images_dir``.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: a class id that is not an integer in ``0..N-1`` (file and line quoted).
    """
    scan = scan_yolo_labels(labels_dir, images_dir, class_names_yaml)
    if verbose and (scan.images_without_labels or scan.labels_without_images):
        print(f"read_yolo_labels({os.fspath(labels_dir)!r}): {scan.summary()}")
    return scan.files
