"""COCO instances JSON, YOLO label folders and tfds VOC/COCO examples as multi-hot labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from retdm_keras.data import image_dataset
from retdm_keras.data.coco import COCO_CLASSES, coco_multi_hot, read_coco_instances
from retdm_keras.data.voc import VOC_CLASSES, voc_multi_hot
from retdm_keras.data.yolo import read_class_names, read_yolo_labels, scan_yolo_labels


def _png(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 10, 3), value, np.uint8)).save(path)


# --------------------------------------------------------------------------- COCO JSON
def _coco_json(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    for name in ("a.png", "b.png", "c.png"):
        _png(images / name)
    content = {
        "images": [
            {"id": 30, "file_name": "c.png"},
            {"id": 10, "file_name": "a.png"},
            {"id": 20, "file_name": "b.png"},
        ],
        "categories": [  # out of id order, with a gap: columns follow the ids
            {"id": 5, "name": "zebra"},
            {"id": 1, "name": "person"},
            {"id": 3, "name": "car"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1},
            {"id": 2, "image_id": 10, "category_id": 1},
            {"id": 3, "image_id": 10, "category_id": 5},
            {"id": 4, "image_id": 30, "category_id": 3},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(content))
    return path


def test_read_coco_instances_multi_hot_in_category_id_order(tmp_path):
    files = read_coco_instances(_coco_json(tmp_path), tmp_path / "images")
    assert files.label_names == ["person", "car", "zebra"]
    assert files.filenames == ["a.png", "c.png"]  # b.png has no annotation: dropped
    np.testing.assert_array_equal(files.labels, [[1, 0, 1], [0, 1, 0]])

    kept = read_coco_instances(_coco_json(tmp_path), keep_empty=True)
    assert kept.filenames == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(kept.labels[1], [0, 0, 0])

    ds = image_dataset(tmp_path / "images", files, image_size=8, batch_size=2)
    x, y = next(iter(ds))
    assert x["images"].shape == (2, 8, 8, 3) and x["index"].numpy().tolist() == [0, 1]
    np.testing.assert_array_equal(y.numpy(), files.labels)


def test_read_coco_instances_errors_name_the_annotation(tmp_path):
    path = _coco_json(tmp_path)
    content = json.loads(path.read_text())
    content["annotations"].append({"id": 99, "image_id": 10, "category_id": 2})
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="annotation 99: unknown category_id 2"):
        read_coco_instances(path)
    with pytest.raises(FileNotFoundError, match="image folder"):
        read_coco_instances(path, tmp_path / "nowhere")


def test_coco_multi_hot_of_fake_tfds_examples():
    example = {"objects": {"label": np.array([0, 79, 79, 2])}, "image/id": 7}
    multi_hot = coco_multi_hot(example).numpy()
    assert multi_hot.shape == (80,) and multi_hot.dtype == np.float32
    assert np.flatnonzero(multi_hot).tolist() == [0, 2, 79]
    assert coco_multi_hot({"objects": {"label": np.zeros((0,), np.int64)}}).numpy().sum() == 0

    ds = tf.data.Dataset.from_generator(
        lambda: iter([{"objects": {"label": np.array([3, 3], np.int64)}}]),
        output_signature={"objects": {"label": tf.TensorSpec((None,), tf.int64)}},
    ).map(coco_multi_hot)
    assert np.flatnonzero(next(iter(ds)).numpy()).tolist() == [3]


# --------------------------------------------------------------------------- VOC
def test_voc_multi_hot_ignores_difficult_objects_by_default():
    example = {
        "objects": {
            "label": np.array([14, 8, 8, 11]),  # person, chair, chair, dog
            "is_difficult": np.array([False, True, False, True]),
        }
    }
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[14] == "person"
    assert np.flatnonzero(voc_multi_hot(example).numpy()).tolist() == [8, 14]
    everything = voc_multi_hot(example, include_difficult=True).numpy()
    assert np.flatnonzero(everything).tolist() == [8, 11, 14]
    empty = {"objects": {"label": np.zeros(0, np.int64), "is_difficult": np.zeros(0, bool)}}
    assert voc_multi_hot(empty).numpy().tolist() == [0.0] * 20


# --------------------------------------------------------------------------- YOLO
def _yolo_folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    images, labels = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    for stem in ("img1", "img2", "img3", "sub/img4", "nolabel"):
        _png(images / f"{stem}.png")
    labels.mkdir(parents=True)
    (labels / "sub").mkdir()
    (labels / "img1.txt").write_text("0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.1 0.1\n0 0.3 0.3 0.1 0.1\n")
    (labels / "img2.txt").write_text("")  # an image without objects
    (labels / "img3.txt").write_text("\n1 0.5 0.5 0.5 0.5 0.6 0.6\n")  # a segment
    (labels / "sub" / "img4.txt").write_text("2 0.5 0.5 1 1\n")
    (labels / "orphan.txt").write_text("1 0.5 0.5 1 1\n")
    names = tmp_path / "data.yaml"
    names.write_text("path: .\nnames:\n  0: cat\n  1: dog\n  2: bird\n")
    return labels, images, names


def test_read_yolo_labels_pairs_and_reports_skips(tmp_path, capsys):
    labels, images, names = _yolo_folder(tmp_path)
    files = read_yolo_labels(labels, images, names)
    assert files.label_names == ["cat", "dog", "bird"]
    assert files.filenames == ["img1.png", "img2.png", "img3.png", "sub/img4.png"]
    np.testing.assert_array_equal(files.labels, [[1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 1]])
    out = capsys.readouterr().out
    assert "4 labelled images" in out and "1 image(s) without a label file" in out
    assert "1 label file(s) without an image" in out

    scan = scan_yolo_labels(labels, images, names)
    assert scan.images_without_labels == ["nolabel.png"]
    assert scan.labels_without_images == ["orphan.txt"]

    x, y = next(iter(image_dataset(images, files, image_size=8, batch_size=4)))
    assert x["images"].shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(y.numpy(), files.labels)


def test_yolo_errors_and_name_lists(tmp_path):
    labels, images, names = _yolo_folder(tmp_path)
    (labels / "img2.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=r"img2.txt, line 2: class id 7 outside 0..2"):
        read_yolo_labels(labels, images, names, verbose=False)
    (labels / "img2.txt").write_text("cat 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match="line 1: class id 'cat' is not an integer"):
        read_yolo_labels(labels, images, names, verbose=False)
    as_list = tmp_path / "list.yaml"
    as_list.write_text("names: [a, b]\n")
    assert read_class_names(as_list) == ["a", "b"]
    gap = tmp_path / "gap.yaml"
    gap.write_text("names: {0: a, 2: c}\n")
    with pytest.raises(ValueError, match="ids must be 0..1"):
        read_class_names(gap)
    with pytest.raises(FileNotFoundError, match="label folder"):
        read_yolo_labels(tmp_path / "none", images, names)


def test_yolo_on_the_real_coco_subset(shared_data, capsys):
    root = shared_data / "coco_subset"
    if not root.is_dir():
        pytest.skip("coco_subset not available")
    names = root / "object_detection" / "config.yaml"
    assert read_class_names(names) == list(COCO_CLASSES)
    labels = root / "object_detection" / "labels"
    images = root / "images"
    train = scan_yolo_labels(labels / "train2017", images / "train2017", names)
    assert len(train.files) == 126  # the README: two images without labels, two orphans
    assert len(train.images_without_labels) == 2 and len(train.labels_without_images) == 2
    val = read_yolo_labels(labels / "val2017", images / "val2017", names)
    assert len(val) == 128 and val.num_labels == 80
    assert capsys.readouterr().out == ""  # nothing skipped in val: nothing printed
    assert val.labels.sum(axis=1).min() >= 1 and val.labels[:, 0].sum() > 50  # persons
    x, y = next(iter(image_dataset(images / "val2017", val.subset(range(3)), image_size=16)))
    assert x["images"].shape == (3, 16, 16, 3) and y.shape == (3, 80)
