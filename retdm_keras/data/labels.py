"""Multi-label annotation CSVs for image folders: read and validate.

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

:class:`LabeledFiles` and :func:`check_files_exist` live in
:mod:`~retdm_keras.data.labeled_files`, :func:`load_split` in
:mod:`~retdm_keras.data.splits`; all are importable from here too.

Example::

    files = read_labels_csv("miml_scene/labels.csv")
    split = load_split("miml_scene/split.json")
    train = files.subset(split["train"])
    check_files_exist("miml_scene/images", train.filenames, csv_lines=train.csv_lines)
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Sequence

import numpy as np

from retdm_keras.data.labeled_files import LabeledFiles, check_files_exist
from retdm_keras.data.splits import load_split

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
