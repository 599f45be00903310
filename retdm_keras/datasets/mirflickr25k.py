"""``mirflickr25k``: MIRFLICKR-25K (Huiskes & Lew), 25,000 Flickr photos, 24 concepts.

Manual folder, from the two official archives::

    <manual_dir>/mirflickr/im1.jpg ... im25000.jpg     mirflickr25k.zip
    <manual_dir>/annotations/animals.txt ...           mirflickr25k_annotations_v080.zip
    <manual_dir>/split.json                            optional {"train": [...], ...}

Each ``<concept>.txt`` lists the numbers ``n`` of the images (``im<n>.jpg``) annotated with
the concept; ``<concept>_r1.txt`` is the stricter "relevant" subset (used with
``relevant_only=True`` in :func:`read_mirflickr25k`). Images with none of the 24 concepts
are dropped. The set has no official split: without ``split.json`` everything is one
``train`` split, and recipes slice it (tfds stores examples in a key-hashed, i.e. shuffled,
order, so ``train[:70%]`` / ``train[70%:80%]`` / ``train[80%:]`` are random, disjoint
subsets).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from retdm_keras.data.labels import LabeledFiles, load_split
from retdm_keras.datasets.builder import (
    MultiLabelImageBuilder,
    SplitFiles,
    labelled_only,
)

MIRFLICKR25K_LABELS: tuple[str, ...] = (
    "animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor",
    "lake", "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky",
    "structures", "sunset", "transport", "tree", "water",
)  # fmt: skip
_ANNOTATION_DIRS = ("annotations", "mirflickr25k_annotations_v080", ".")
_logger = logging.getLogger(__name__)


def _annotation_dir(manual_dir: Path) -> Path:
    for name in _ANNOTATION_DIRS:
        if (manual_dir / name / f"{MIRFLICKR25K_LABELS[0]}.txt").is_file():
            return manual_dir / name
    raise FileNotFoundError(
        f"no MIRFLICKR-25K annotations (e.g. {MIRFLICKR25K_LABELS[0]}.txt) in "
        f"{[os.fspath(manual_dir / n) for n in _ANNOTATION_DIRS]}"
    )


def read_mirflickr25k(
    manual_dir: str | os.PathLike[str], *, relevant_only: bool = False
) -> tuple[Path, LabeledFiles]:
    """The image folder and the labelled images of an unpacked MIRFLICKR-25K.

    Args:
        manual_dir: folder with ``mirflickr/`` and the annotation ``.txt`` files.
        relevant_only: read ``<concept>_r1.txt`` where it exists (the strict annotations).

    Returns:
        ``(image folder, files)``: one row per existing image with at least one concept,
        ordered by image number.
    """
    root = Path(manual_dir)
    notes = _annotation_dir(root)
    images = root / "mirflickr"
    if not images.is_dir():
        raise FileNotFoundError(f"image folder {os.fspath(images)!r} does not exist")
    numbers = sorted(int(p.stem[2:]) for p in images.glob("im*.jpg") if p.stem[2:].isdigit())
    row = {n: i for i, n in enumerate(numbers)}
    labels = np.zeros((len(numbers), len(MIRFLICKR25K_LABELS)), np.float32)
    for column, concept in enumerate(MIRFLICKR25K_LABELS):
        path = notes / f"{concept}_r1.txt" if relevant_only else notes / f"{concept}.txt"
        if not path.is_file():
            path = notes / f"{concept}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"annotation file {os.fspath(path)!r} does not exist")
        for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            token = line.strip()
            if not token:
                continue
            if not token.isdigit():
                raise ValueError(
                    f"{path}, line {line_number}: expected an image number, got {token!r}"
                )
            if int(token) in row:
                labels[row[int(token)], column] = 1.0
    files = LabeledFiles(
        [f"im{n}.jpg" for n in numbers], labels, list(MIRFLICKR25K_LABELS), source=os.fspath(notes)
    )
    files, unlabelled = labelled_only(files)
    _logger.info("mirflickr25k: %d images, %d without any concept dropped", len(files), unlabelled)
    return images, files


class Mirflickr25k(MultiLabelImageBuilder):
    """tfds builder for MIRFLICKR-25K with its 24 concept labels (read from ``manual_dir``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images with the 24 potential-label concepts (v080)."}
    LABEL_NAMES = MIRFLICKR25K_LABELS
    DESCRIPTION = "MIRFLICKR-25K: 25,000 Flickr images annotated with 24 concepts."
    HOMEPAGE = "https://press.liacs.nl/mirflickr/"
    CITATION = (
        "@inproceedings{huiskes2008mir, title={The MIR Flickr retrieval evaluation}, "
        "author={Huiskes, Mark J. and Lew, Michael S.}, booktitle={ACM MIR}, year={2008}}"
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download mirflickr25k.zip and mirflickr25k_annotations_v080.zip from
    https://press.liacs.nl/mirflickr/ and unpack them as
      <manual_dir>/mirflickr/im1.jpg ... im25000.jpg
      <manual_dir>/annotations/animals.txt, baby.txt, ... (the 24 concept files)
      <manual_dir>/split.json   (optional: {"train": [...], "val": [...], "test": [...]})
    then pass download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>).
    """

    def _read_manual(self, manual_dir: Path) -> SplitFiles:
        images, files = read_mirflickr25k(manual_dir)
        split_json = manual_dir / "split.json"
        if not split_json.is_file():
            return {"train": (images, files)}
        known = set(files.filenames)  # split entries without a concept were dropped
        return {
            name: (images, files.subset([n for n in rows if n in known]))
            for name, rows in load_split(split_json).items()
        }
