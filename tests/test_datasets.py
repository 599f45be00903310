"""The tfds builders of ``retdm_keras.datasets``, prepared from tiny manual folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from retdm_keras import zoo
from retdm_keras.data.coco import coco_multi_hot
from retdm_keras.datasets import (
    MIRFLICKR25K_LABELS,
    NUS_WIDE_LABELS,
    MimlScene,
    Mirflickr25k,
    NusWide,
    from_tfds,
    load,
)
from retdm_keras.recipes import Recipe, build_datasets, train_recipe

SCENE = ["desert", "mountains", "sea", "sunset", "trees"]


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, np.uint8)).save(path)


def _prepare(builder_cls, tmp_path: Path, manual: Path):
    builder = builder_cls(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual), try_download_gcs=False)
    )
    return builder


def _examples(builder, split: str) -> list[dict]:
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


@pytest.fixture
def scene_manual(tmp_path) -> Path:
    manual = tmp_path / "miml_scene"
    rows = [",".join(["Filenames", *SCENE])]
    for i in range(8):
        _image(manual / "images" / f"{i}.png", 20 * i)
        onehot = [int(j == i % 5 or j == (i + 1) % 5 and i % 2) for j in range(5)]
        rows.append(",".join([f"{i}.png", *map(str, onehot)]))
    (manual / "labels.csv").write_text("\n".join(rows) + "\n")
    split = {"train": [f"{i}.png" for i in range(5)], "val": ["5.png"], "test": ["6.png", "7.png"]}
    (manual / "split.json").write_text(json.dumps(split))
    return manual


def test_miml_scene_builder(tmp_path, scene_manual):
    builder = _prepare(MimlScene, tmp_path, scene_manual)
    assert builder.name == "miml_scene"
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
        "train": 5,
        "val": 1,
        "test": 2,
    }
    assert builder.info.features["labels"].feature.names == SCENE
    examples = _examples(builder, "train")
    by_name = {e["image/filename"].decode(): e for e in examples}
    assert sorted(by_name) == [f"{i}.png" for i in range(5)]
    first = by_name["1.png"]
    assert first["image"].shape == (10, 12, 3) and first["image"].dtype == np.uint8
    assert first["multi_hot"].dtype == np.float32 and first["multi_hot"].tolist() == [0, 1, 1, 0, 0]
    assert first["labels"].tolist() == [1, 2]


def test_load_gives_the_csv_pipeline_structure(tmp_path, scene_manual):
    data = load(
        "miml_scene",
        "train",
        data_dir=tmp_path / "tfds",
        manual_dir=scene_manual,
        image_size=16,
        batch_size=2,
        training=True,
        seed=0,
    )
    assert data.num_examples == 5 and data.label_names == SCENE
    indices, labels = [], []
    for x, y in data.dataset:
        assert set(x) == {"images", "index"} and x["images"].shape[1:] == (16, 16, 3)
        assert x["images"].dtype == tf.float32 and y.dtype == tf.float32
        indices += x["index"].numpy().tolist()
        labels.append(y.numpy())
    assert sorted(indices) == [0, 1, 2, 3, 4]  # every sample once: the memory-bank contract
    assert np.concatenate(labels).shape == (5, 5)
    half = load("miml_scene", "train[:60%]", data_dir=tmp_path / "tfds", image_size=8)
    assert half.num_examples == 3


def test_missing_manual_folder_shows_the_instructions(tmp_path):
    with pytest.raises(AssertionError, match="natural scene"):
        _prepare(MimlScene, tmp_path, tmp_path / "not_there")


def test_mirflickr25k_builder(tmp_path):
    manual = tmp_path / "mirflickr25k"
    for n in range(1, 6):
        _image(manual / "mirflickr" / f"im{n}.jpg", 40 * n)
    notes = manual / "annotations"
    notes.mkdir()
    for concept in MIRFLICKR25K_LABELS:
        (notes / f"{concept}.txt").write_text("")
    (notes / "sky.txt").write_text("1\n2\n4\n")
    (notes / "dog.txt").write_text("2\n")
    (notes / "dog_r1.txt").write_text("")  # the strict variant is not used by default
    (notes / "sea.txt").write_text("3\n99\n")  # image 99 does not exist: ignored
    builder = _prepare(Mirflickr25k, tmp_path, manual)
    examples = {e["image/filename"].decode(): e for e in _examples(builder, "train")}
    assert sorted(examples) == ["im1.jpg", "im2.jpg", "im3.jpg", "im4.jpg"]  # im5: no concept
    sky, dog = MIRFLICKR25K_LABELS.index("sky"), MIRFLICKR25K_LABELS.index("dog")
    assert np.flatnonzero(examples["im2.jpg"]["multi_hot"]).tolist() == sorted([sky, dog])
    assert examples["im2.jpg"]["multi_hot"].shape == (24,)


def test_nus_wide_builder(tmp_path):
    manual = tmp_path / "nus_wide"
    keys = ["actor/0001_1.jpg", "actor/0002_2.jpg", "beach/0003_3.jpg", "beach/0004_4.jpg"]
    for i, key in enumerate(keys[:3]):  # beach/0004_4.jpg is a dead Flickr link
        _image(manual / "Flickr" / key, 50 * i)
    (manual / "Concepts81.txt").write_text("\n".join(NUS_WIDE_LABELS) + "\n")
    lists = manual / "ImageList"
    lists.mkdir()
    windows = [f"C:\\ImageData\\Flickr\\{k.replace('/', chr(92))}" for k in keys]
    (lists / "Imagelist.txt").write_text("\n".join(windows) + "\n")
    (lists / "TrainImagelist.txt").write_text("actor\\0001_1.jpg\nbeach\\0003_3.jpg\n")
    (lists / "TestImagelist.txt").write_text("actor\\0002_2.jpg\nbeach\\0004_4.jpg\n")
    truth = manual / "Groundtruth" / "AllLabels"
    truth.mkdir(parents=True)
    positives = {"beach": [2, 3], "person": [0, 2], "sky": [1]}
    for concept in NUS_WIDE_LABELS:
        column = ["1" if i in positives.get(concept, []) else "0" for i in range(len(keys))]
        (truth / f"Labels_{concept}.txt").write_text("\n".join(column) + "\n")
    builder = _prepare(NusWide, tmp_path, manual)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "test": 1}
    test = _examples(builder, "test")[0]
    assert test["image/filename"].decode() == "actor/0002_2.jpg"
    assert np.flatnonzero(test["multi_hot"]).tolist() == [NUS_WIDE_LABELS.index("sky")]
    assert len(builder.info.features["labels"].feature.names) == 81


def test_from_tfds_with_coco_labels_drops_empty_examples_before_numbering():
    def encoded(value: int) -> bytes:
        return tf.io.encode_png(tf.fill((6, 6, 3), tf.constant(value, tf.uint8))).numpy()

    objects = [[1, 5], [], [79]]
    ds = tf.data.Dataset.from_generator(
        lambda: (
            {"image": encoded(10 * i), "objects": {"label": np.array(o, np.int64)}}
            for i, o in enumerate(objects)
        ),
        output_signature={
            "image": tf.TensorSpec((), tf.string),
            "objects": {"label": tf.TensorSpec((None,), tf.int64)},
        },
    )
    batches = list(
        from_tfds(ds, labels=coco_multi_hot, image_size=4, batch_size=8, drop_empty=True)
    )
    ((x, y),) = batches
    assert x["index"].numpy().tolist() == [0, 1] and x["images"].shape == (2, 4, 4, 3)
    assert [np.flatnonzero(row).tolist() for row in y.numpy()] == [[1, 5], [79]]


def test_a_tfds_recipe_trains_end_to_end(tmp_path, scene_manual):
    config = {
        "name": "scene-tfds",
        "data": {
            "format": "tfds",
            "name": "miml_scene",
            "manual_dir": str(scene_manual),
            "data_dir": str(tmp_path / "tfds"),
            "val_split": "val",
            "test_split": "test",
        },
        "model": {
            "backbone": "tiny_cnn",
            "image_size": 16,
            "embed_dim": 8,
            "num_neighbors": 2,
            "label_hidden_units": 8,
        },  # fmt: skip
        "training": {"epochs": [1, 1, 1], "batch_size": 4},
    }
    recipe = Recipe.from_dict(config)
    data = build_datasets(recipe)
    assert data.sizes == {"train": 5, "val": 1, "test": 2} and data.label_names == SCENE
    x, _ = next(iter(data.bank))
    assert x["index"].numpy().tolist() == [0, 1, 2, 3]  # the bank pass is in order
    entry = train_recipe(recipe, tmp_path / "entry", verbose=0)
    assert zoo.verify_entry(entry)["training"]["test_samples"] == 2
