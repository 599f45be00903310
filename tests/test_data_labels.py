"""Tests for retdm_keras.data.labels: CSV formats, validation, splits, file checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retdm_keras.data.labels import (
    LabeledFiles,
    NoLabelsWarning,
    check_files_exist,
    load_split,
    read_labels_csv,
)

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    return Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------- formats


def test_one_hot_csv(tmp_path: Path) -> None:
    p = write(tmp_path / "l.csv", "Filenames,a,b,c\nx.jpg,1,0,1\n\ny.png,0,0,0\nz.jpg,0,1.0,0\n")
    f = read_labels_csv(p)
    assert f.filenames == ["x.jpg", "y.png", "z.jpg"]
    assert f.label_names == ["a", "b", "c"]
    assert f.labels.dtype == np.float32 and f.labels.shape == (3, 3)
    np.testing.assert_array_equal(f.labels, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    assert f.csv_lines == [2, 4, 5]  # blank line 3 skipped, numbering kept
    assert len(f) == 3 and f.num_labels == 3 and f.source == str(p)


def test_one_hot_bom_image_column_and_label_selection(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes("\ufeffa,file,b\n1,x.jpg,0\n0,y.jpg,1\n".encode())
    f = read_labels_csv(p, image_column="file")
    assert f.filenames == ["x.jpg", "y.jpg"] and f.label_names == ["a", "b"]
    g = read_labels_csv(p, image_column="file", label_names=["b"])
    assert g.label_names == ["b"]
    np.testing.assert_array_equal(g.labels, [[0], [1]])


def test_label_list_csv(tmp_path: Path) -> None:
    p = write(
        tmp_path / "l.csv",
        'filename,labels\nimg1.jpg,"sea,sunset"\nimg2.jpg,trees\nimg3.jpg,\n'
        "img4.jpg,sea;trees\nimg5.jpg,sunset  sea\n",
    )
    with pytest.warns(NoLabelsWarning, match=r"1 of 5 row\(s\) have an empty labels cell.*4"):
        f = read_labels_csv(p)
    assert f.label_names == ["sea", "sunset", "trees"]  # sorted vocabulary
    np.testing.assert_array_equal(f.labels, [[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1], [1, 1, 0]])
    with pytest.warns(NoLabelsWarning):
        g = read_labels_csv(p, label_names=["trees", "sunset", "sea", "desert"])
    assert g.label_names == ["trees", "sunset", "sea", "desert"]
    np.testing.assert_array_equal(g.labels[0], [0, 1, 1, 0])


def test_label_list_column_first_and_extra_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "l.csv", "Labels,path,note\na b,p1.jpg,hi\nb,p2.jpg,\n")
    f = read_labels_csv(p)
    assert f.filenames == ["p1.jpg", "p2.jpg"] and f.label_names == ["a", "b"]
    f2 = read_labels_csv(p, image_column="path")
    np.testing.assert_array_equal(f.labels, f2.labels)


@pytest.mark.filterwarnings("ignore::retdm_keras.data.labels.NoLabelsWarning")
@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=n, max_size=n),
        )
    )
)
def test_both_formats_round_trip(tmp_path_factory: pytest.TempPathFactory, data) -> None:
    n, rows = data
    names = ["cat", "dog", "sea", "sky"]
    labels = np.asarray(rows, np.float32)
    files = [f"img_{i}.jpg" for i in range(n)]
    d = tmp_path_factory.mktemp("rt")
    one_hot = "file," + ",".join(names) + "\n"
    one_hot += "".join(
        f"{fn}," + ",".join(str(int(v)) for v in row) + "\n"
        for fn, row in zip(files, labels, strict=True)
    )
    listed = "file,labels\n" + "".join(
        f'{fn},"{",".join(nm for nm, v in zip(names, row, strict=True) if v)}"\n'
        for fn, row in zip(files, labels, strict=True)
    )
    a = read_labels_csv(write(d / "a.csv", one_hot))
    b = read_labels_csv(write(d / "b.csv", listed), label_names=names)
    for f in (a, b):
        assert f.filenames == files and f.label_names == names
        np.testing.assert_array_equal(f.labels, labels)


# ------------------------------------------------------------------ validation

BAD_CSVS = {
    "empty": ("", r"empty file"),
    "blank_only": ("\n\n", r"empty file"),
    "header_only": ("file,a\n", r"no data rows"),
    "not_binary": ("file,a,b\nx.jpg,1,0\ny.jpg,2,0\n", r"line 3: .*'a'.*0 or 1"),
    "nan": ("file,a\nx.jpg,nan\n", r"line 2: .*0 or 1"),
    "empty_cell": ("file,a,b\nx.jpg,1,\n", r"line 2: .*'b'.*0 or 1"),
    "word": ("file,a\nx.jpg,yes\n", r"line 2: .*0 or 1"),
    "duplicate": (
        "file,a\nx.jpg,1\ny.jpg,0\nx.jpg,0\n",
        r"line 4: duplicate filename 'x.jpg'.*line 2",
    ),
    "cell_count": ("file,a,b\nx.jpg,1\n", r"line 2: expected 3 cells, got 2"),
    "empty_filename": ("file,a\n ,1\n", r"line 2: empty filename"),
    "unknown_label": (
        "file,labels\nx.jpg,a\ny.jpg,a;zebra\n",
        r"line 3: unknown label name 'zebra'",
    ),
    "dup_column": ("file,a,a\nx.jpg,1,0\n", r"line 1: duplicate column name 'a'"),
    "no_label_columns": ("file\nx.jpg\n", r"no label columns"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_errors_name_file_and_line(tmp_path: Path, case: str) -> None:
    text, pattern = BAD_CSVS[case]
    p = write(tmp_path / f"{case}.csv", text)
    kwargs = {"label_names": ["a"]} if case == "unknown_label" else {}
    with pytest.raises(ValueError, match=pattern) as err:
        read_labels_csv(p, **kwargs)
    assert str(p) in str(err.value)


def test_missing_image_and_label_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "l.csv", "file,a\nx.jpg,1\n")
    with pytest.raises(ValueError, match=r"line 1: missing image column 'path'"):
        read_labels_csv(p, image_column="path")
    with pytest.raises(ValueError, match=r"missing label column\(s\) \['zzz'\]"):
        read_labels_csv(p, label_names=["a", "zzz"])


# ----------------------------------------------------------------- LabeledFiles


def make_files() -> LabeledFiles:
    labels = np.eye(4, 3, dtype=np.float32)
    return LabeledFiles(["a", "b", "c", "d"], labels, ["x", "y", "z"], csv_lines=[2, 3, 4, 5])


def test_subset_by_names_and_indices_keeps_request_order() -> None:
    f = make_files()
    s = f.subset(["c", "a"])
    assert s.filenames == ["c", "a"] and s.csv_lines == [4, 2]
    np.testing.assert_array_equal(s.labels, f.labels[[2, 0]])
    t = f.subset(np.array([3, -4, 1]))
    assert t.filenames == ["d", "a", "b"]
    np.testing.assert_array_equal(t.labels, f.labels[[3, 0, 1]])
    empty = f.subset([])
    assert len(empty) == 0 and empty.labels.shape == (0, 3)


def test_subset_errors() -> None:
    f = make_files()
    with pytest.raises(ValueError, match=r"1 requested filename.*'q'"):
        f.subset(["a", "q"])
    with pytest.raises(IndexError):
        f.subset([4])
    with pytest.raises(ValueError, match="either"):
        f.subset(["a", 1])


def test_labeled_files_validates_and_is_frozen() -> None:
    with pytest.raises(ValueError, match="does not match"):
        LabeledFiles(["a"], np.zeros((2, 3)), ["x", "y", "z"])
    f = LabeledFiles(["a"], [[1, 0]], ["x", "y"])
    assert f.labels.dtype == np.float32
    with pytest.raises(AttributeError):
        f.filenames = []  # type: ignore[misc]


# ---------------------------------------------------------- splits and files


def test_load_split(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"train": ["a", "b"], "val": [], "test": ["c"]}))
    assert load_split(p) == {"train": ["a", "b"], "val": [], "test": ["c"]}


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("[1, 2]", "JSON object"),
        ('{"train": "a.jpg"}', "list of filename strings"),
        ('{"train": ["a", "a"]}', "more than once"),
        ("{not json", "invalid JSON"),
    ],
)
def test_load_split_errors(tmp_path: Path, content: str, pattern: str) -> None:
    p = tmp_path / "s.json"
    p.write_text(content)
    with pytest.raises(ValueError, match=pattern):
        load_split(p)


def test_check_files_exist(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jpg").write_bytes(b"x")
    check_files_exist(tmp_path, ["a.jpg", "sub/b.jpg"])
    names = ["a.jpg"] + [f"m{i}.jpg" for i in range(8)]
    with pytest.raises(FileNotFoundError) as err:
        check_files_exist(tmp_path, names, csv_lines=list(range(2, 11)), source="l.csv")
    msg = str(err.value)
    assert "8 of 9" in msg and "l.csv" in msg and "'m0.jpg' (line 3)" in msg
    assert "m4.jpg" in msg and "m5.jpg" not in msg  # only the first five listed
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_files_exist(tmp_path / "nope", ["a.jpg"])


# -------------------------------------------------------------------- real data


def test_real_miml_scene_labels_and_split() -> None:
    root = real_data_dir() / "miml_scene"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"real data not found at {root}")
    f = read_labels_csv(root / "labels.csv")
    assert len(f) == 2000 and f.labels.shape == (2000, 5)
    assert f.label_names == ["desert", "mountains", "sea", "sunset", "trees"]
    assert f.labels.sum(axis=1).mean() == pytest.approx(1.24, abs=0.01)
    split = load_split(root / "split.json")
    assert {k: len(v) for k, v in split.items()} == {"train": 1400, "val": 200, "test": 400}
    assert set().union(*map(set, split.values())) == set(f.filenames)
    train = f.subset(split["train"])
    assert train.filenames == split["train"]
    check_files_exist(root / "images", f.filenames)
