"""Image filenames with multi-hot labels (:class:`LabeledFiles`) and the check that they exist.

:class:`LabeledFiles` is what every annotation reader returns (the labels CSV, COCO,
YOLO, VOC): filenames plus an ``(N, C)`` multi-hot matrix, row ``i`` belonging to
``filenames[i]``; that row position is the sample ``index`` the tf.data pipelines emit.
:func:`check_files_exist` fails early, naming the annotation file and CSV lines, when
listed images are missing. No TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LabeledFiles", "check_files_exist"]


@dataclass(frozen=True, eq=False)
class LabeledFiles:
    """Image filenames with their multi-hot labels.

    Attributes:
        filenames: image paths relative to the image folder, one per sample.
        labels: ``(N, C)`` float32 multi-hot matrix; row ``i`` is ``filenames[i]``.
        label_names: the ``C`` label names, in column order.
        csv_lines: optional 1-based CSV line of each row (kept by :meth:`subset`),
            used to point error messages at the annotation file.
        source: optional path of the file the annotations came from.
    """

    filenames: list[str]
    labels: np.ndarray
    label_names: list[str]
    csv_lines: list[int] | None = field(default=None, repr=False)
    source: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        filenames = [str(f) for f in self.filenames]
        label_names = [str(n) for n in self.label_names]
        labels = np.asarray(self.labels, dtype=np.float32)
        if labels.ndim == 1 and labels.size == 0:
            labels = labels.reshape(0, len(label_names))
        if labels.ndim != 2:
            raise ValueError(f"labels must be 2-D (N, C), got shape {labels.shape}")
        if labels.shape != (len(filenames), len(label_names)):
            raise ValueError(
                f"labels shape {labels.shape} does not match "
                f"{len(filenames)} filenames x {len(label_names)} label names"
            )
        object.__setattr__(self, "filenames", filenames)
        object.__setattr__(self, "label_names", label_names)
        object.__setattr__(self, "labels", labels)
        if self.csv_lines is not None:
            lines = [int(n) for n in self.csv_lines]
            if len(lines) != len(filenames):
                raise ValueError("csv_lines must have one entry per filename")
            object.__setattr__(self, "csv_lines", lines)

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def num_labels(self) -> int:
        """Number of label columns ``C``."""
        return len(self.label_names)

    def subset(self, names_or_indices: Sequence[str] | Sequence[int] | np.ndarray) -> LabeledFiles:
        """Select rows by filename or integer position, in the order requested.

        Args:
            names_or_indices: filenames (all ``str``) or row indices (ints,
                negatives allowed). Repeats are allowed and kept.

        Returns:
            A new :class:`LabeledFiles`; its row ``i`` is the ``i``-th request.

        Raises:
            ValueError: unknown filenames (the first few are listed) or mixed types.
            IndexError: an index out of range.
        """
        request = list(names_or_indices)
        if request and all(isinstance(r, str) for r in request):
            position = {name: i for i, name in enumerate(self.filenames)}
            missing = [r for r in request if r not in position]
            if missing:
                where = f" of {self.source}" if self.source else ""
                raise ValueError(
                    f"{len(missing)} requested filename(s) are not in the annotations{where}; "
                    f"first: {missing[:5]}"
                )
            rows = [position[r] for r in request]
        else:
            if any(isinstance(r, str) for r in request):
                raise ValueError("subset() takes either all filenames or all integer indices")
            rows = []
            for r in request:
                if not isinstance(r, int | np.integer) or isinstance(r, bool):
                    raise ValueError(f"subset() index must be an integer, got {r!r}")
                i = int(r)
                if not -len(self) <= i < len(self):
                    raise IndexError(f"index {i} out of range for {len(self)} rows")
                rows.append(i % len(self))
        return LabeledFiles(
            filenames=[self.filenames[i] for i in rows],
            labels=self.labels[np.asarray(rows, dtype=np.int64)],
            label_names=list(self.label_names),
            csv_lines=None if self.csv_lines is None else [self.csv_lines[i] for i in rows],
            source=self.source,
        )


def check_files_exist(
    image_dir: str | os.PathLike[str],
    filenames: Sequence[str],
    *,
    csv_lines: Sequence[int] | None = None,
    source: str | None = None,
    max_report: int = 5,
) -> None:
    """Raise if any ``image_dir/filename`` is not an existing file.

    Args:
        image_dir: folder the filenames are relative to.
        filenames: relative (or absolute) image paths.
        csv_lines: optional CSV line per filename, quoted in the message.
        source: optional annotation file name, quoted in the message.
        max_report: how many missing files to list.

    Raises:
        FileNotFoundError: ``image_dir`` is not a folder, or files are missing
            (the first ``max_report`` are listed, plus the total count).
    """
    root = os.fspath(image_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    if csv_lines is not None and len(csv_lines) != len(filenames):
        raise ValueError("csv_lines must have one entry per filename")
    missing: list[str] = []
    count = 0
    for i, name in enumerate(filenames):
        if not os.path.isfile(os.path.join(root, name)):
            count += 1
            if len(missing) < max_report:
                where = f" (line {csv_lines[i]})" if csv_lines is not None else ""
                missing.append(f"{name!r}{where}")
    if count:
        origin = f" listed in {source}" if source else ""
        raise FileNotFoundError(
            f"{count} of {len(filenames)} image file(s){origin} not found under {root!r}; "
            f"first: {', '.join(missing)}"
        )
