"""Tests for retdm_keras.data.arff: the ARFF parser and the feature dataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from retdm_keras.data import FeatureSet, feature_dataset, load_arff, read_labels_xml

REPO = Path(__file__).resolve().parents[1]
SCENE_LABELS = ["Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban"]


def scene_dir() -> Path:
    root = Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))
    path = root / "mulan" / "scene"
    if not (path / "scene-train.arff").is_file():
        pytest.skip(f"real data not found at {path}")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


DENSE = """% a comment
@relation toy

@attribute f1 numeric
@ATTRIBUTE 'feature two' REAL
@attribute "f 3" integer
@attribute colour {red,green,blue}
@attribute lab1 {0,1}
@attribute lab2 {0,1}

@data
% rows follow
1.5,2,3,red,1,0
-1,0.25,1e2,'blue',0,1
0,0,0,green,1,1
"""

LABELS_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="lab2"></label>
<label name="lab1"></label>
</labels>
"""


# -------------------------------------------------------------------- parsing


def test_dense_quoted_names_nominal_and_num_labels(tmp_path: Path) -> None:
    fs = load_arff(write(tmp_path / "d.arff", DENSE), num_labels=2)
    assert isinstance(fs, FeatureSet) and len(fs) == 3
    assert fs.feature_names == ["f1", "feature two", "f 3", "colour"]
    assert fs.label_names == ["lab1", "lab2"]
    assert fs.features.dtype == np.float32 and fs.labels.dtype == np.float32
    np.testing.assert_allclose(fs.features, [[1.5, 2, 3, 0], [-1, 0.25, 100, 2], [0, 0, 0, 1]])
    np.testing.assert_array_equal(fs.labels, [[1, 0], [0, 1], [1, 1]])
    assert fs.num_features == 4 and fs.num_labels == 2


def test_labels_from_xml_set_order(tmp_path: Path) -> None:
    xml = write(tmp_path / "d.xml", LABELS_XML)
    assert read_labels_xml(xml) == ["lab2", "lab1"]
    fs = load_arff(write(tmp_path / "d.arff", DENSE), labels_xml=xml)
    assert fs.label_names == ["lab2", "lab1"]
    np.testing.assert_array_equal(fs.labels, [[0, 1], [1, 0], [1, 1]])
    assert fs.features.shape == (3, 4)


def test_sparse_rows(tmp_path: Path) -> None:
    text = (
        "@relation sp\n@attribute a numeric\n@attribute b numeric\n@attribute c numeric\n"
        "@attribute L1 {0,1}\n@attribute L2 {0,1}\n@data\n"
        "{0 1.5, 3 1}\n{}\n{ 2 -4 , 4 1 }\n1,2,3,0,0\n"
    )
    fs = load_arff(write(tmp_path / "s.arff", text), num_labels=2)
    np.testing.assert_array_equal(fs.features, [[1.5, 0, 0], [0, 0, 0], [0, 0, -4], [1, 2, 3]])
    np.testing.assert_array_equal(fs.labels, [[1, 0], [0, 0], [0, 1], [0, 0]])


def test_meka_relation_and_hierarchical_xml(tmp_path: Path) -> None:
    text = "@relation 'toy: -C 2'\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n"
    text += "@attribute x numeric\n@data\n1,0,0.5\n"
    fs = load_arff(write(tmp_path / "m.arff", text))
    assert fs.label_names == ["y1", "y2"] and fs.feature_names == ["x"]
    last = "@relation 'toy: -C -1'\n@attribute x numeric\n@attribute y {0,1}\n@data\n2,1\n"
    fs = load_arff(write(tmp_path / "n.arff", last))
    assert fs.label_names == ["y"] and fs.feature_names == ["x"]
    np.testing.assert_array_equal(fs.labels, [[1]])
    nested = (
        '<labels xmlns="http://mulan.sourceforge.net/labels"><label name="y1">'
        '<label name="y2"/></label></labels>'
    )
    xml = write(tmp_path / "h.xml", nested)
    assert read_labels_xml(xml) == ["y1", "y2"]


MALFORMED = {
    "column_count": ("1.5,2,3,red,1\n", r"line 13: expected 6 values, got 5"),
    "non_numeric": ("1.5,abc,3,red,1,0\n", r"line 13: non-numeric value 'abc' for 'feature two'"),
    "label_not_binary": ("1.5,2,3,red,2,0\n", r"line 13: label 'lab1' must be 0 or 1"),
    "missing": ("1.5,?,3,red,1,0\n", r"line 13: missing value"),
    "undeclared_nominal": ("1,2,3,pink,1,0\n", r"line 13: value 'pink' not declared"),
    "sparse_range": ("{9 1}\n", r"line 13: sparse index 9 out of range"),
    "sparse_bad": ("{x 1}\n", r"line 13: bad sparse entry"),
    "sparse_unclosed": ("{0 1\n", r"line 13: sparse row without closing"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_rows_report_file_and_line(tmp_path: Path, case: str) -> None:
    row, pattern = MALFORMED[case]
    header = DENSE.split("% rows follow\n")[0] + "% rows follow\n"  # the row is line 13
    p = write(tmp_path / f"{case}.arff", header + row)
    with pytest.raises(ValueError, match=pattern) as err:
        load_arff(p, num_labels=2)
    assert str(p) in str(err.value)


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n", {"num_labels": 1}, "no @data"),
        ("@relation r\n@attribute a string\n@data\n", {"num_labels": 1}, "unsupported type"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\n", {}, "labels_xml"),
        (
            "@relation r\n@attribute a numeric\n@attribute b {x,y}\n@data\n",
            {"num_labels": 1},
            "not binary",
        ),
        ("@relation r\n@attribute a numeric\n@data\n", {"num_labels": 1}, "num_labels=1"),
        ("@relation r\n@bogus x\n", {"num_labels": 1}, "line 2: unexpected header"),
    ],
)
def test_malformed_headers(tmp_path: Path, text: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        load_arff(write(tmp_path / "h.arff", text), **kwargs)


def test_xml_label_not_an_attribute(tmp_path: Path) -> None:
    xml = write(tmp_path / "x.xml", LABELS_XML.replace("lab2", "zzz"))
    with pytest.raises(ValueError, match=r"\['zzz'\].*not attributes"):
        load_arff(write(tmp_path / "d.arff", DENSE), labels_xml=xml)


# ------------------------------------------------------------ feature_dataset


def test_feature_dataset_structure_and_index() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(23, 5))
    labels = (rng.random((23, 3)) < 0.4).astype(np.float32)
    ds = feature_dataset(features, labels, batch_size=5, training=True, seed=3)
    spec_x, spec_y = ds.element_spec
    assert spec_x["features"].shape.as_list() == [None, 5]
    assert spec_x["features"].dtype == tf.float32 and spec_x["index"].dtype == tf.int64
    assert spec_y.shape.as_list() == [None, 3] and spec_y.dtype == tf.float32
    orders = []
    for _ in range(2):
        index = []
        for x, y in ds:
            i = x["index"].numpy()
            np.testing.assert_array_equal(y.numpy(), labels[i])
            np.testing.assert_allclose(x["features"].numpy(), features[i].astype(np.float32))
            index.extend(i.tolist())
        assert sorted(index) == list(range(23))
        orders.append(index)
    assert orders[0] != orders[1] and orders[0] != list(range(23))
    plain = [x["index"].numpy() for x, _ in feature_dataset(features, labels, batch_size=10)]
    np.testing.assert_array_equal(np.concatenate(plain), np.arange(23))
    dropped = feature_dataset(features, labels, batch_size=10, drop_remainder=True)
    assert sum(1 for _ in dropped) == 2
    with pytest.raises(ValueError, match="must agree"):
        feature_dataset(features, labels[:3])


# ------------------------------------------------------------------ real data


def test_real_mulan_scene() -> None:
    d = scene_dir()
    train = load_arff(d / "scene-train.arff", labels_xml=d / "scene.xml")
    test = load_arff(d / "scene-test.arff", labels_xml=d / "scene.xml")
    assert train.features.shape == (1211, 294) and train.labels.shape == (1211, 6)
    assert test.features.shape == (1196, 294) and test.labels.shape == (1196, 6)
    assert train.label_names == SCENE_LABELS == test.label_names
    assert train.feature_names[0] == "Att1" and train.feature_names[-1] == "Att294"
    both = np.concatenate([train.labels, test.labels])
    assert set(np.unique(both)) == {0.0, 1.0}
    assert both.sum(axis=1).mean() == pytest.approx(1.07, abs=0.01)
    assert train.labels.sum(axis=1).min() >= 1  # every scene image has a label
    by_count = load_arff(d / "scene-train.arff", num_labels=6)
    np.testing.assert_array_equal(by_count.features, train.features)
    np.testing.assert_array_equal(by_count.labels, train.labels)
    x, y = next(iter(feature_dataset(train.features, train.labels, batch_size=64, training=True)))
    assert x["features"].shape == (64, 294) and y.shape == (64, 6)
    np.testing.assert_array_equal(y.numpy(), train.labels[x["index"].numpy()])
