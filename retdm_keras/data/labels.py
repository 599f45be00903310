"""Multi-label annotations for image folders: read, validate, split.

This module is the *validate-first* half of the image input pipeline. It turns
an annotation CSV into a :class:`LabeledFiles` (filenames plus an ``(N, C)``
multi-hot matrix) and fails early, with the file name and the 1-based CSV line
number, on anything that would otherwise surface much later as an opaque
TensorFlow error in the middle of an epoch. It deliberately imports no
TensorFlow, so it is cheap to use from scripts and tests.

Two CSV layouts are understood; the layout is detected from the header:

* **one-hot** (no column called ``labels``)::

      Filenames,desert,mountains,sea,sunset,trees
      1.jpg,1,0,0,0,0

  The image column is the first column (or ``image_column``), every other
  column is a label whose cells must be ``0`` or ``1``.

* **label list** (a column called ``labels``)::

      filename,labels
      img1.jpg,"sea,sunset"
      img2.jpg,trees
      img3.jpg,

  The ``labels`` cell holds label names separated by commas, semicolons or
  whitespace. The vocabulary is ``label_names`` when given (an unknown name is
  an error), otherwise the sorted set of names seen in the file.

  **An empty cell is allowed**: an image with no positive label, an all-zero
  row. It is reported (one :class:`NoLabelsWarning` with the count and the
  first CSV lines), because a forgotten cell looks the same. Training needs no
  special case: the all-zero vector is a label set like any other (RETDM's
  neighbour search and metric loss treat it as such), and every file can also
  carry explicit all-zero rows in the one-hot layout, which are not reported.

In both layouts the header is the first row that is not blank. A blank row
(an empty line, or a row whose cells are all empty or whitespace, such as the
``,,`` rows a spreadsheet leaves at the end of an export) is skipped wherever it
is; it still counts for the line numbers. A row with any non-blank cell is a
data row and is validated (an empty filename next to a non-empty cell is an
error, not a skipped row).

Row ``i`` of ``LabeledFiles.labels`` belongs to ``LabeledFiles.filenames[i]``;
that row position is the sample ``index`` the tf.data pipelines emit.

Example::

    files = read_labels_csv("miml_scene/labels.csv")
    split = load_split("miml_scene/split.json")
    train = files.subset(split["train"])
    check_files_exist("miml_scene/images", train.filenames, csv_lines=train.csv_lines)
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LabeledFiles",
    "NoLabelsWarning",
    "check_files_exist",
    "load_split",
    "read_labels_csv",
]

_LABEL_LIST_COLUMN = "labels"
_LABEL_SEPARATORS = re.compile(r"[,;\s]+")


class NoLabelsWarning(UserWarning):
    """Rows of a label-list CSV with an empty ``labels`` cell (kept, as all-zero rows)."""


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


def _parse_binary(value: str, path: str, line: int, column: str) -> float:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number not in (0.0, 1.0):  # NaN is never a member
        raise ValueError(
            f"{path}, line {line}: label column {column!r} must be 0 or 1, got {value!r}"
        )
    return number


def _not_utf8(path: str) -> str:
    """The error message for a file that is not UTF-8, with the line of the first bad byte."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return f"{path}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x})"
    return f"{path}: not UTF-8 text"


def read_labels_csv(
    path: str | os.PathLike[str],
    *,
    image_column: str | None = None,
    label_names: Sequence[str] | None = None,
) -> LabeledFiles:
    """Read and validate a multi-label annotation CSV (one-hot or label-list).

    Args:
        path: the CSV file (UTF-8, an optional BOM is ignored).
        image_column: name of the filename column; default: the first column
            that is not the ``labels`` column.
        label_names: the label vocabulary and column order. Label-list format:
            names outside it are an error. One-hot format: these columns are
            taken, in this order (missing ones are an error, others ignored).

    The header is the first non-blank row; blank rows (all cells empty or
    whitespace) are skipped anywhere, see the module docstring.

    Returns:
        A :class:`LabeledFiles` with rows in file order and ``csv_lines`` set.

    Raises:
        ValueError: empty file or no data rows (the message names the header
            line and the blank rows after it), missing/duplicate columns, a
            row with the wrong number of cells, an empty or duplicate filename,
            a one-hot cell that is not 0/1, an unknown label name, malformed CSV
            or text that is not UTF-8; with the file and, where it is about a
            row, its line.

    Warns:
        NoLabelsWarning: label-list rows with an empty ``labels`` cell (kept
            as all-zero rows, see the module docstring).
    """
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header: list[str] | None = None
        header_line = 0
        rows: list[tuple[int, list[str]]] = []
        blank_after_header: list[int] = []  # the first few, for the "no data rows" error
        num_blank_after_header = 0
        try:
            for cells in reader:
                if not any(c.strip() for c in cells):
                    if header is not None:
                        num_blank_after_header += 1
                        if len(blank_after_header) < 10:
                            blank_after_header.append(reader.line_num)
                    continue  # blank line or a row of blank cells
                if header is None:
                    header = [c.strip() for c in cells]
                    header_line = reader.line_num
                else:
                    rows.append((reader.line_num, cells))
        except csv.Error as err:
            raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({err})") from None
        except UnicodeDecodeError:
            raise ValueError(_not_utf8(path)) from None
    if header is None:
        raise ValueError(f"{path}: empty file (no header row)")
    if not rows:
        skipped = ""
        if num_blank_after_header:
            shown = ", ".join(map(str, blank_after_header))
            more = ", ..." if num_blank_after_header > len(blank_after_header) else ""
            skipped = (
                f"; the {num_blank_after_header} row(s) after it are blank (every cell "
                f"empty or whitespace) and were skipped: line(s) {shown}{more}"
            )
        raise ValueError(f"{path}: no data rows after the header (line {header_line}){skipped}")

    seen_cols: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen_cols:
            raise ValueError(f"{path}, line {header_line}: duplicate column name {name!r}")
        seen_cols[name] = i
    list_col = next((i for i, n in enumerate(header) if n.lower() == _LABEL_LIST_COLUMN), None)

    if image_column is not None:
        if image_column not in seen_cols:
            raise ValueError(
                f"{path}, line {header_line}: missing image column {image_column!r}; "
                f"columns are {header}"
            )
        img_col = seen_cols[image_column]
    else:
        img_col = next((i for i in range(len(header)) if i != list_col), None)
        if img_col is None:
            raise ValueError(f"{path}, line {header_line}: missing image column")
    if img_col == list_col:
        raise ValueError(f"{path}: the image column cannot be the {_LABEL_LIST_COLUMN!r} column")

    filenames: list[str] = []
    lines: list[int] = []
    first_line: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) != len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} cells, got {len(cells)}")
        name = cells[img_col].strip()
        if not name:
            raise ValueError(f"{path}, line {line}: empty filename")
        if name in first_line:
            raise ValueError(
                f"{path}, line {line}: duplicate filename {name!r} "
                f"(first seen on line {first_line[name]})"
            )
        first_line[name] = line
        filenames.append(name)
        lines.append(line)

    if list_col is None:
        # One-hot layout.
        if label_names is not None:
            names = [str(n) for n in label_names]
            missing = [n for n in names if n not in seen_cols]
            if missing:
                raise ValueError(f"{path}, line {header_line}: missing label column(s) {missing}")
            cols = [seen_cols[n] for n in names]
        else:
            cols = [i for i in range(len(header)) if i != img_col]
            names = [header[i] for i in cols]
        if not names:
            raise ValueError(f"{path}, line {header_line}: no label columns")
        labels = np.zeros((len(rows), len(names)), np.float32)
        for r, (line, cells) in enumerate(rows):
            for c, col in enumerate(cols):
                labels[r, c] = _parse_binary(cells[col], path, line, header[col])
    else:
        # Label-list layout.
        per_row: list[list[str]] = []
        for _, cells in rows:
            per_row.append([t for t in _LABEL_SEPARATORS.split(cells[list_col].strip()) if t])
        if label_names is not None:
            names = [str(n) for n in label_names]
            if len(set(names)) != len(names):
                raise ValueError("label_names contains duplicates")
        else:
            names = sorted({t for tokens in per_row for t in tokens})
        if not names:
            raise ValueError(f"{path}: no label names (every labels cell is empty)")
        empty = [line for (line, _), tokens in zip(rows, per_row, strict=True) if not tokens]
        if empty:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
            warnings.warn(
                f"{path}: {len(empty)} of {len(rows)} row(s) have an empty labels cell and "
                f"are kept as images with no label (all-zero rows); line(s) {shown}",
                NoLabelsWarning,
                stacklevel=2,
            )
        column_of = {n: i for i, n in enumerate(names)}
        labels = np.zeros((len(rows), len(names)), np.float32)
        for r, ((line, _), tokens) in enumerate(zip(rows, per_row, strict=True)):
            for t in tokens:
                if t not in column_of:
                    raise ValueError(
                        f"{path}, line {line}: unknown label name {t!r}; "
                        f"known: {names[:20]}{' ...' if len(names) > 20 else ''}"
                    )
                labels[r, column_of[t]] = 1.0

    return LabeledFiles(filenames, labels, names, csv_lines=lines, source=path)


def load_split(split_json_path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a ``{"train": [...], "val": [...], "test": [...]}`` split file.

    Any split names are accepted; each must map to a list of filename strings
    without repeats.

    Raises:
        ValueError: the JSON is not such an object, or a split repeats a name.
    """
    path = os.fspath(split_json_path)
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON object of split name -> filenames")
    out: dict[str, list[str]] = {}
    for split, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: split {split!r} must be a list of filename strings")
        if len(set(names)) != len(names):
            dup = next(n for i, n in enumerate(names) if n in names[:i])
            raise ValueError(f"{path}: split {split!r} lists {dup!r} more than once")
        out[str(split)] = list(names)
    return out


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
