"""``nus_wide``: NUS-WIDE (Chua et al.), 269,648 Flickr images, 81 ground-truth concepts.

Manual folder, from the official ground truth, image lists and the images::

    <manual_dir>/Concepts81.txt                          (or ConceptsList/Concepts81.txt)
    <manual_dir>/ImageList/Imagelist.txt                 one image path per line, e.g.
                                                         C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg
    <manual_dir>/ImageList/TrainImagelist.txt            the official train images
    <manual_dir>/ImageList/TestImagelist.txt             the official test images
    <manual_dir>/Groundtruth/AllLabels/Labels_<concept>.txt   one 0/1 per Imagelist line
    <manual_dir>/Flickr/<folder>/<file>.jpg              the images

Image paths are matched on their last two components (``actor/0001_2124494179.jpg``), so the
Windows prefixes of the official lists do not matter. Many Flickr images can no longer be
fetched and images without any of the 81 concepts are common: both are dropped (the counts are
logged). Splits: the official ``train`` and ``test``; carve a validation set with tfds slicing,
e.g. ``train[:90%]`` / ``train[90%:]`` (stored examples are in a shuffled order).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from retdm_keras.data.labels import LabeledFiles
from retdm_keras.datasets.builder import (
    MultiLabelImageBuilder,
    SplitFiles,
    existing_images,
    labelled_only,
)

NUS_WIDE_LABELS: tuple[str, ...] = (
    "airport", "animal", "beach", "bear", "birds", "boats", "book", "bridge", "buildings",
    "cars", "castle", "cat", "cityscape", "clouds", "computer", "coral", "cow", "dancing",
    "dog", "earthquake", "elk", "fire", "fish", "flags", "flowers", "food", "fox", "frost",
    "garden", "glacier", "grass", "harbor", "horses", "house", "lake", "leaf", "map",
    "military", "moon", "mountain", "nighttime", "ocean", "person", "plane", "plants",
    "police", "protest", "railroad", "rainbow", "reflection", "road", "rocks", "running",
    "sand", "sign", "sky", "snow", "soccer", "sports", "statue", "street", "sun", "sunset",
    "surf", "swimmers", "tattoo", "temple", "tiger", "tower", "town", "toy", "train", "tree",
    "valley", "vehicle", "water", "waterfall", "wedding", "whales", "window", "zebra",
)  # fmt: skip
"""The 81 concepts in ``Concepts81.txt`` order."""

_logger = logging.getLogger(__name__)


def _image_key(line: str) -> str:
    """``folder/file.jpg`` from an image-list line (``\\`` or ``/`` separated)."""
    parts = [p for p in line.strip().replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:])


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"NUS-WIDE file {os.fspath(path)!r} does not exist")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_nus_wide(manual_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, LabeledFiles]]:
    """The image folder and the official ``train``/``test`` files of an unpacked NUS-WIDE.

    Returns:
        ``(image folder, {"train": files, "test": files})``; only images that exist and
        carry at least one of the 81 concepts are kept.

    Raises:
        FileNotFoundError: a list or label file is missing.
        ValueError: ``Concepts81.txt`` does not list the 81 expected concepts, a label file
            has the wrong number of lines or a value other than 0/1.
    """
    root = Path(manual_dir)
    for concepts in (root / "Concepts81.txt", root / "ConceptsList" / "Concepts81.txt"):
        if concepts.is_file():
            names = [line.strip() for line in _read_lines(concepts)]
            if names != list(NUS_WIDE_LABELS):
                raise ValueError(
                    f"{concepts}: expected the 81 NUS-WIDE concepts, got {names[:5]}..."
                )
    keys = [_image_key(line) for line in _read_lines(root / "ImageList" / "Imagelist.txt")]
    labels = np.zeros((len(keys), len(NUS_WIDE_LABELS)), np.float32)
    for column, concept in enumerate(NUS_WIDE_LABELS):
        path = root / "Groundtruth" / "AllLabels" / f"Labels_{concept}.txt"
        values = _read_lines(path)
        if len(values) != len(keys):
            raise ValueError(f"{path}: {len(values)} lines, but Imagelist.txt lists {len(keys)}")
        try:
            column_values = np.asarray([int(v) for v in values], np.float32)
        except ValueError as err:
            raise ValueError(f"{path}: values must be 0 or 1 ({err})") from err
        if not np.isin(column_values, (0.0, 1.0)).all():
            raise ValueError(f"{path}: values must be 0 or 1")
        labels[:, column] = column_values
    everything = LabeledFiles(keys, labels, list(NUS_WIDE_LABELS), source=os.fspath(root))
    images = root / "Flickr"
    everything, missing = existing_images(images, everything)
    everything, unlabelled = labelled_only(everything)
    _logger.info(
        "nus_wide: %d images missing and %d without a concept dropped", missing, unlabelled
    )
    known = set(everything.filenames)
    splits = {}
    for split, list_name in (("train", "TrainImagelist.txt"), ("test", "TestImagelist.txt")):
        members = [_image_key(line) for line in _read_lines(root / "ImageList" / list_name)]
        splits[split] = everything.subset([k for k in members if k in known])
    return images, splits


class NusWide(MultiLabelImageBuilder):
    """tfds builder for NUS-WIDE with its 81 ground-truth concepts (read from ``manual_dir``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images with the 81 concepts; official train/test split."}
    LABEL_NAMES = NUS_WIDE_LABELS
    DESCRIPTION = "NUS-WIDE: Flickr images with 81 manually annotated concepts."
    HOMEPAGE = "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html"
    CITATION = (
        "@inproceedings{chua2009nus, title={NUS-WIDE: a real-world web image database from "
        "National University of Singapore}, author={Chua, Tat-Seng and Tang, Jinhui and Hong, "
        "Richang and Li, Haojie and Luo, Zhiping and Zheng, Yantao}, booktitle={CIVR}, "
        "year={2009}}"
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    From the NUS-WIDE page (see HOMEPAGE) get Groundtruth.zip, ImageList.zip,
    ConceptsList.zip and the images (the Flickr folders), and lay them out as
      <manual_dir>/Concepts81.txt
      <manual_dir>/ImageList/Imagelist.txt, TrainImagelist.txt, TestImagelist.txt
      <manual_dir>/Groundtruth/AllLabels/Labels_<concept>.txt   (81 files)
      <manual_dir>/Flickr/<folder>/<file>.jpg
    then pass download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>).
    """

    def _read_manual(self, manual_dir: Path) -> SplitFiles:
        images, splits = read_nus_wide(manual_dir)
        return {name: (images, files) for name, files in splits.items()}
