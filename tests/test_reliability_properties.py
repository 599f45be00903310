"""Property-based tests of the annotation readers: any input gives a correct result or the
documented ``ValueError`` (naming the file, and the line where the problem is a row), never
another exception, and every output is in range.

``read_labels_csv``: random one-hot and label-list CSVs with junk cells, empty or duplicate
filenames, unknown label names and blank rows (all cells empty or whitespace: skipped, as
documented, so a file of only blank rows is rejected at its header line), checked against
an independent expectation, and arbitrary text. ``load_arff``: random dense/sparse ARFF
files (exact values when every cell is valid) and arbitrary header/data lines. At most 50
examples each (plus the pinned ``@example`` cases), no deadline; under ``CI`` the examples
are the same on every run (the ``ci`` profile of ``conftest.py``).
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from retdm_keras.data.arff import load_arff
from retdm_keras.data.labels import LabeledFiles, NoLabelsWarning, read_labels_csv

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip
# text on one physical line (the line numbers in the expectations count lines)
ONE_LINE = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)))
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
GOOD_CELLS = ["0", "1", " 1", "0 ", "1.0", "0.0", "1e0", "+1", "-0"]
CELLS = st.integers(0, 9).flatmap(lambda k: ONE_LINE if k == 0 else st.sampled_from(GOOD_CELLS))


def new_file(factory: pytest.TempPathFactory, name: str, text: str) -> Path:
    """``text`` in a fresh folder (one per example; pytest prunes old base folders)."""
    path = factory.mktemp("example") / name
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(factory: pytest.TempPathFactory, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return new_file(factory, "labels.csv", buffer.getvalue())


def binary(cell: str) -> float | None:
    try:
        value = float(cell.strip())
    except ValueError:
        return None
    return value if value in (0.0, 1.0) else None


def line_of(message: str) -> int | None:
    found = re.search(r"\bline (\d+)", message)
    return int(found.group(1)) if found else None


def check_invariants(files: LabeledFiles) -> None:
    n, c = files.labels.shape
    assert n == len(files.filenames) == len(files.csv_lines) > 0 and c == len(files.label_names)
    assert set(np.unique(files.labels).tolist()) <= {0.0, 1.0}
    assert all(name and name == name.strip() for name in files.filenames)
    assert len(set(files.filenames)) == n and len(set(files.label_names)) == c
    assert all(a < b for a, b in zip(files.csv_lines, files.csv_lines[1:], strict=False))


def filename_strategy() -> st.SearchStrategy[str]:
    return st.sampled_from(["ok"] * 16 + ["empty", "dup", "spaces", "spaces"])


def make_filename(kind: str, i: int, earlier: list[str]) -> str:
    if kind == "empty":
        return ""
    if kind == "spaces":
        return f"  img{i}.jpg "
    if kind == "dup" and earlier:
        return earlier[0]
    return f"img{i}.jpg"


def non_blank(table: list[list[str]]) -> list[tuple[int, list[str]]]:
    """``(line, cells)`` of the data rows the reader keeps (blank rows are skipped)."""
    return [(n, cells) for n, cells in enumerate(table[1:], 2) if any(c.strip() for c in cells)]


def row_problems(rows: list[tuple[int, list[str]]], image_col: int) -> dict[int, str]:
    """Line -> problem for the filename errors the reader must find."""
    problems, seen = {}, set()
    for line, cells in rows:
        name = cells[image_col].strip()
        if not name:
            problems[line] = "empty filename"
        elif name in seen:
            problems[line] = "duplicate"
        seen.add(name)
    return problems


# ------------------------------------------------------------------ one-hot CSV


@SETTINGS
@given(
    num_labels=st.integers(1, 4),
    spec=st.lists(
        st.tuples(
            filename_strategy(),
            st.lists(CELLS, min_size=4, max_size=4),
            st.sampled_from([0] * 20 + [-1, 1]),  # cells missing / extra
        ),
        min_size=1,
        max_size=8,
    ),
)
# only blank rows (no filename and whitespace cells; a lone empty cell is written as "")
@example(num_labels=1, spec=[("empty", [" ", "0", "0", "0"], 0), ("empty", ["", "", "", ""], -1)])
def test_one_hot_csv_is_read_exactly_or_rejected_at_a_bad_line(
    tmp_path_factory, num_labels, spec
) -> None:
    names = ["a", "b", "c", "d"][:num_labels]
    table, filenames = [["file", *names]], []
    for i, (kind, cells, width) in enumerate(spec):
        filename = make_filename(kind, i, filenames)
        filenames.append(filename)
        table.append([filename, *cells[: num_labels + width]] + ["0"] * max(0, width))
    path = write_csv(tmp_path_factory, table)
    rows = non_blank(table)
    bad = row_problems([(n, c) for n, c in rows if len(c) == num_labels + 1], 0)
    for line, cells in rows:
        if len(cells) != num_labels + 1 or any(binary(c) is None for c in cells[1:]):
            bad[line] = "cells"
    try:
        files = read_labels_csv(path)
    except ValueError as err:
        message = str(err)
        assert str(path) in message
        assert line_of(message) in (set(bad) if rows else {1}), (message, bad)
        if not rows:  # every data row is blank (<= 8 of them, all listed)
            skipped = ", ".join(map(str, range(2, len(table) + 1)))
            assert message.endswith(f"were skipped: line(s) {skipped}"), message
        event("rejected")
        return
    assert rows and not bad
    event("read")
    check_invariants(files)
    assert files.label_names == names
    assert files.filenames == [cells[0].strip() for _, cells in rows]
    assert files.csv_lines == [line for line, _ in rows]
    expected = [[binary(c) for c in cells[1:]] for _, cells in rows]
    np.testing.assert_array_equal(files.labels, np.asarray(expected, np.float32))


# ------------------------------------------------------------------ label-list CSV

VOCABULARY = ["sea", "sky", "tree"]


@SETTINGS
@given(
    given_names=st.booleans(),
    note=st.booleans(),
    spec=st.lists(
        st.tuples(
            filename_strategy(),
            st.lists(st.sampled_from([*VOCABULARY, "junk"]), max_size=3),
            st.lists(st.sampled_from([",", ";", " ", "  ", ", ", "\t", " ;"]), min_size=4),
            ONE_LINE,
        ),
        min_size=1,
        max_size=8,
    ),
)
# issue #12: the only data row is blank (no filename, a whitespace labels cell), so it is
# skipped like an empty line and the file has no data rows: the error names the header line
@example(given_names=False, note=False, spec=[("empty", [], [" ", ",", ",", ","], "")])
@example(given_names=True, note=True, spec=[("empty", [], ["\t", ",", ",", ","], " ")])
# an empty filename next to a non-blank cell is a data row with an error, not a blank row
@example(given_names=False, note=True, spec=[("empty", [], [" ", ",", ",", ","], "x")])
def test_label_list_csv_is_read_exactly_or_rejected(
    tmp_path_factory, given_names, note, spec
) -> None:
    header = ["filename", "labels", *(["note"] if note else [])]
    table, filenames, tokens_of = [header], [], {}
    for i, (kind, tokens, separators, text) in enumerate(spec):
        filename = make_filename(kind, i, filenames)
        filenames.append(filename)
        cell = separators[0] + "".join(t + s for t, s in zip(tokens, separators[1:], strict=False))
        table.append([filename, cell, *([text] if note else [])])
        tokens_of[i + 2] = tokens
    path = write_csv(tmp_path_factory, table)
    rows = non_blank(table)
    bad = row_problems(rows, 0)
    vocabulary = VOCABULARY if given_names else sorted({t for n, _ in rows for t in tokens_of[n]})
    file_level = not vocabulary
    if given_names:
        bad.update({n: "unknown" for n, _ in rows if set(tokens_of[n]) - set(VOCABULARY)})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            files = read_labels_csv(path, label_names=VOCABULARY if given_names else None)
        except ValueError as err:
            message = str(err)
            assert str(path) in message
            line = line_of(message)
            if not rows:  # every data row is blank: "no data rows", at the header line
                skipped = ", ".join(map(str, range(2, len(table) + 1)))  # <= 8 rows: all
                assert line == 1 and message.endswith(f"were skipped: line(s) {skipped}"), message
            else:
                assert (line in bad) if line is not None else file_level, (message, bad)
            event("rejected")
            return
    assert rows and not bad and not file_level
    event("read")
    check_invariants(files)
    assert files.label_names == vocabulary
    assert files.filenames == [cells[0].strip() for _, cells in rows]
    assert files.csv_lines == [line for line, _ in rows]
    expected = [[float(v in tokens_of[n]) for v in vocabulary] for n, _ in rows]
    np.testing.assert_array_equal(files.labels, np.asarray(expected, np.float32))
    empty_rows = [n for n, _ in rows if not tokens_of[n]]
    reported = [w for w in record if issubclass(w.category, NoLabelsWarning)]
    assert len(reported) == (1 if empty_rows else 0)
    if empty_rows:
        assert f"line(s) {empty_rows[0]}" in str(reported[0].message)


@SETTINGS
@given(
    header=st.sampled_from(["", "file,a,b\n", "filename,labels\n", "labels\n", "a,a\n"]),
    body=st.lists(
        st.one_of(st.sampled_from(["x.jpg,1,0", "y.jpg,0,1", 'z.jpg,"a b"', "w.jpg,"]), ANY_TEXT),
        max_size=5,
    ).map("\n".join),
)
def test_arbitrary_text_gives_labeled_files_or_a_value_error(
    tmp_path_factory, header, body
) -> None:
    path = new_file(tmp_path_factory, "labels.csv", header + body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoLabelsWarning)
        try:
            files = read_labels_csv(path)
        except ValueError as err:
            assert str(path) in str(err)
            event("rejected")
            return
    event("read")
    check_invariants(files)


# ------------------------------------------------------------------ ARFF

NOMINALS = [["0", "1", "2"], ["x", "y"], ["nan", "1"], ["inf", "-inf", "0"], ["'a b'", "c"]]


def arff_value(draw, kind, values) -> tuple[str, float | None]:
    """A cell for an attribute: ``(text, expected value)``; None when it is junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ONE_LINE.filter(lambda s: "," not in s and "}" not in s)), None
    if kind == "numeric":
        number = draw(st.floats(-1e6, 1e6, allow_nan=False, width=32))
        return repr(number), number
    if kind == "label":
        bit = draw(st.sampled_from(["0", "1"]))
        return bit, float(bit)
    position = draw(st.integers(0, len(values) - 1))
    return values[position], None  # the value's code is checked through the invariants


@st.composite
def arff_files(draw):
    features = draw(
        st.lists(st.sampled_from(["numeric", "real", "nominal"]), min_size=1, max_size=3)
    )
    num_labels = draw(st.integers(1, 3))
    kinds, lines, nominal = [], ["% a comment", "@relation test"], []
    for j, kind in enumerate(features):
        if kind == "nominal":
            values = draw(st.sampled_from(NOMINALS))
            lines.append(f"@attribute f{j} {{{','.join(values)}}}")
            kinds.append(("nominal", [v.strip("'") for v in values]))
            nominal.append(j)
        else:
            lines.append(f"@attribute 'feature {j}' {kind}")
            kinds.append(("numeric", None))
    for j in range(num_labels):
        lines.append(f"@attribute L{j} {{0,1}}")
        kinds.append(("label", None))
    lines.append("@data")
    rows, junk = [], False
    for _ in range(draw(st.integers(0, 5))):
        cells = [arff_value(draw, kind, values) for kind, values in kinds]
        junk |= any(
            v is None and kind != "nominal" for (_, v), (kind, _) in zip(cells, kinds, strict=True)
        )
        junk |= any(cells[j][0] not in kinds[j][1] for j in nominal)
        if draw(st.booleans()):
            keep = [i for i in range(len(cells)) if draw(st.booleans())]
            lines.append("{" + ", ".join(f"{i} {cells[i][0]}" for i in keep) + "}")
            if any(kinds[i][0] == "nominal" for i in range(len(cells)) if i not in keep):
                junk = True  # an omitted nominal takes its first value: not checked exactly
            cells = [cells[i] if i in keep else ("0", 0.0) for i in range(len(cells))]
        else:
            lines.append(",".join(text for text, _ in cells))
        rows.append([v for _, v in cells])
    return "\n".join(lines) + "\n", num_labels, len(features), rows, junk


@SETTINGS
@given(case=arff_files())
def test_random_arff_parses_in_range_or_raises_value_error(tmp_path_factory, case) -> None:
    text, num_labels, num_features, rows, junk = case
    path = new_file(tmp_path_factory, "data.arff", text)
    try:
        data = load_arff(path, num_labels=num_labels)
    except ValueError as err:
        assert str(path) in str(err)
        assert junk, f"valid file rejected: {err}"
        event("rejected")
        return
    event("read, junk" if junk else "read, exact")
    # a junk cell can turn a row into a comment ("%...") or a blank line: fewer rows
    assert len(data.features) == len(rows) or (junk and len(data.features) < len(rows))
    assert data.features.shape[1] == num_features and data.labels.shape[1] == num_labels
    assert np.isfinite(data.features).all()
    assert set(np.unique(data.labels).tolist()) <= {0.0, 1.0}
    if not junk:
        for r, row in enumerate(rows):
            for j, value in enumerate(row[:num_features]):
                if value is not None:
                    assert math.isclose(data.features[r, j], np.float32(value), rel_tol=1e-6)
            np.testing.assert_array_equal(data.labels[r], row[num_features:])


@SETTINGS
@given(
    head=st.lists(
        st.sampled_from(
            [
                "@relation 'r: -C 2'",
                "@relation r",
                "@attribute x numeric",
                "@attribute 'y z' real",
                "@attribute n {a,b}",
                "@attribute L1 {0,1}",
                "@attribute L2 {0,1}",
                "@attribute s string",
                "% comment",
                "",
            ]
        ),
        max_size=8,
    ),
    junk=st.lists(ONE_LINE, max_size=3),
    data=st.lists(
        st.one_of(
            st.sampled_from(["1,0,1", "0.5,a,1,0", "{0 1, 3 1}", "{}", "?,a,0,1", "1,2"]),
            ONE_LINE,
        ),
        max_size=4,
    ),
    num_labels=st.sampled_from([None, 1, 2]),
)
def test_arbitrary_arff_lines_never_crash(tmp_path_factory, head, junk, data, num_labels) -> None:
    text = "\n".join([*head, *junk, "@data", *data]) + "\n"
    path = new_file(tmp_path_factory, "data.arff", text)
    try:
        result = load_arff(path, num_labels=num_labels)
    except ValueError as err:
        assert str(path) in str(err) or "num_labels" in str(err)
        event("rejected")
        return
    event("read")
    assert np.isfinite(result.features).all()
    assert set(np.unique(result.labels).tolist()) <= {0.0, 1.0}
    assert len(result.features) == len(result.labels)
