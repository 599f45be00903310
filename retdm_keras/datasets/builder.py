"""The shared base of the manual-download multi-label tfds builders.

Every builder of this package follows one pattern:

1. ``_read_manual(manual_dir)`` turns the user's unpacked archive into
   ``{split name: (image folder, LabeledFiles)}`` with plain Python (no TensorFlow), using
   the same readers as the CSV pipeline, so a malformed annotation fails with the file and line;
2. ``_generate_examples`` writes one example per row::

       {"image": <the file's bytes>, "image/filename": "a/b.jpg",
        "labels": [label ids], "multi_hot": float32 (C,)}

``labels`` is a ``Sequence(ClassLabel)`` (names in ``info.features["labels"].feature.names``),
``multi_hot`` the same set as a ready-to-train vector. A missing or empty manual folder is
reported by tfds with the builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``.
"""

from __future__ import annotations

import abc
import importlib.resources
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from retdm_keras.data.labels import LabeledFiles

# tensorflow-datasets 4.9.x uses the ``importlib_resources`` backport on every Python but only
# declares it for Python < 3.9 (tensorflow/datasets#11212): without it every
# ``download_and_prepare`` fails with ModuleNotFoundError. The standard library's
# ``importlib.resources`` has the one attribute it needs (``abc.Traversable``).
if importlib.util.find_spec("importlib_resources") is None:  # pragma: no cover - env dependent
    import importlib.resources.abc  # noqa: F401

    sys.modules.setdefault("importlib_resources", importlib.resources)

SplitFiles = dict[str, tuple[Path, LabeledFiles]]
"""``{split name: (image folder, files relative to it)}``."""


class MultiLabelImageBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
    """A tfds builder for an image folder with multi-hot labels, read from ``manual_dir``.

    Subclasses set ``LABEL_NAMES``, ``VERSION``, ``RELEASE_NOTES``,
    ``MANUAL_DOWNLOAD_INSTRUCTIONS``, ``DESCRIPTION``, ``HOMEPAGE``, ``CITATION`` and
    implement :meth:`_read_manual`.
    """

    LABEL_NAMES: tuple[str, ...] = ()
    DESCRIPTION: str = ""
    HOMEPAGE: str = ""
    CITATION: str = ""

    def _info(self) -> tfds.core.DatasetInfo:
        names = list(self.LABEL_NAMES)
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "image/filename": tfds.features.Text(),
                    "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=names)),
                    "multi_hot": tfds.features.Tensor(shape=(len(names),), dtype=np.float32),
                }
            ),
            supervised_keys=("image", "multi_hot"),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    @abc.abstractmethod
    def _read_manual(self, manual_dir: Path) -> SplitFiles:
        """Read the unpacked archive in ``manual_dir`` into splits."""

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        splits = self._read_manual(Path(os.fspath(dl_manager.manual_dir)))
        for name, (_, files) in splits.items():
            if files.label_names != list(self.LABEL_NAMES):
                raise ValueError(
                    f"{self.name}: split {name!r} has labels {files.label_names}, expected "
                    f"{list(self.LABEL_NAMES)}"
                )
        return {
            name: self._generate_examples(root, files) for name, (root, files) in splits.items()
        }

    def _generate_examples(
        self, image_dir: Path, files: LabeledFiles
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for filename, row in zip(files.filenames, files.labels, strict=True):
            yield (
                filename,
                {
                    "image": image_dir / filename,
                    "image/filename": filename,
                    "labels": np.flatnonzero(row).astype(np.int64),
                    "multi_hot": row.astype(np.float32),
                },
            )


def existing_images(image_dir: Path, files: LabeledFiles) -> tuple[LabeledFiles, int]:
    """The rows of ``files`` whose image exists under ``image_dir``, and how many do not."""
    keep = [i for i, name in enumerate(files.filenames) if (image_dir / name).is_file()]
    return files.subset(keep) if len(keep) != len(files) else files, len(files) - len(keep)


def labelled_only(files: LabeledFiles) -> tuple[LabeledFiles, int]:
    """The rows of ``files`` with at least one label, and how many had none."""
    keep = np.flatnonzero(files.labels.any(axis=1)).tolist()
    return files.subset(keep) if len(keep) != len(files) else files, len(files) - len(keep)
