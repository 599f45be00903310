"""Tests for retdm_keras.data.augment and retdm_keras.data.folder_csv."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from retdm_keras.data import (
    LabeledFiles,
    eval_transform,
    from_folder,
    image_dataset,
    read_labels_csv,
    train_transform,
)

REPO = Path(__file__).resolve().parents[1]
NUM_IMAGES = 10
LABEL_NAMES = ["cat", "dog", "sea"]


def real_data_dir() -> Path:
    return Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))


# -------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LabeledFiles]:
    """10 small images (JPEG/PNG, RGB, grayscale, RGBA, varied sizes) + one-hot CSV."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    names = []
    for i in range(NUM_IMAGES):
        h, w = 20 + 3 * i, 30 - i
        if i == 0:
            img = Image.new("L", (w, h), color=77)
            name = "gray.png"
        elif i == 1:
            img = Image.new("RGBA", (w, h), color=(10, 200, 30, 40))
            name = "rgba.png"
        else:
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            img = Image.fromarray(pixels, "RGB")
            name = f"img{i}.jpg" if i % 2 else f"img{i}.png"
        img.save(root / name)
        names.append(name)
    labels = (rng.random((NUM_IMAGES, len(LABEL_NAMES))) < 0.5).astype(int)
    rows = [",".join([n, *map(str, row)]) for n, row in zip(names, labels, strict=True)]
    csv_path = root / "labels.csv"
    csv_path.write_text("file," + ",".join(LABEL_NAMES) + "\n" + "\n".join(rows) + "\n")
    split = {"train": names[2:], "test": names[:2][::-1]}
    (root / "split.json").write_text(json.dumps(split))
    return root, read_labels_csv(csv_path)


def collect(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, index, y = [], [], []
    for x, labels in ds:
        images.append(x["images"].numpy())
        index.append(x["index"].numpy())
        y.append(labels.numpy())
    return np.concatenate(images), np.concatenate(index), np.concatenate(y)


def quadrant_image(size: int = 256) -> np.ndarray:
    """Top-left red, top-right green, bottom-left blue, bottom-right white."""
    img = np.zeros((size, size, 3), np.uint8)
    half = size // 2
    img[:half, :half] = (255, 0, 0)
    img[:half, half:] = (0, 255, 0)
    img[half:, :half] = (0, 0, 255)
    img[half:, half:] = (255, 255, 255)
    return img


# ------------------------------------------------------------------- augment


def test_train_transform_shape_dtype_range() -> None:
    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for size, hw in [(32, (32, 32)), ((24, 40), (24, 40))]:
        out = train_transform(tf.constant(image), size, seed=(3, 4))
        assert out.shape == (*hw, 3) and out.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
    # global-RNG path also works
    assert train_transform(image, 16).shape == (16, 16, 3)


def test_train_transform_crops_are_exact_corner_and_centre_crops() -> None:
    # With resize_to equal to the input size and the output equal to the crop
    # size, both resizes are identities and the output must be exactly one of
    # the 5 crops, possibly flipped.
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3)).astype(np.float32)
    crops = {
        "tl": image[:32, :32],
        "tr": image[:32, 32:],
        "bl": image[32:, :32],
        "br": image[32:, 32:],
        "c": image[16:48, 16:48],
    }
    seen = set()
    for i in range(60):
        out = train_transform(image, 32, seed=(i, 7), resize_to=64, scales=(0.5,)).numpy()
        match = [
            (k, flipped)
            for k, crop in crops.items()
            for flipped, ref in ((False, crop), (True, crop[:, ::-1]))
            if np.array_equal(out, ref)
        ]
        assert len(match) == 1, f"draw {i} is not a corner/centre crop"
        seen.add(match[0])
    assert {k for k, _ in seen} == set(crops)
    assert {f for _, f in seen} == {False, True}


def test_train_transform_quadrant_image_positions_scales_and_flip() -> None:
    image = tf.constant(quadrant_image())
    colours = {(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)}
    centre_colours, outputs, flips = set(), set(), 0
    for i in range(160):
        out = train_transform(image, 64, seed=(i, 0)).numpy()
        outputs.add(out.round().astype(np.uint8).tobytes())
        centre = tuple(int(v) for v in out[31:33, 31:33].mean(axis=(0, 1)).round())
        centre_colours.add(centre if centre in colours else "mixed")
        # a crop spanning the vertical midline shows green left of red only if flipped
        top = out[0, 0].round()
        if np.array_equal(top, (0, 255, 0)) and np.array_equal(out[0, -1].round(), (255, 0, 0)):
            flips += 1
    # every corner crop appears (its centre pixel lies inside one quadrant), and
    # centre / scale-1.0 crops (centre on the quadrant boundary) too
    assert centre_colours == colours | {"mixed"}
    assert len(outputs) >= 20  # many (position, scale, flip) combinations
    assert flips > 0


def test_train_transform_flip_only_with_scale_one() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255  # right half white
    lefts = {
        int(train_transform(image, 40, seed=(i, 1), scales=(1.0,)).numpy()[0, 0, 0].round())
        for i in range(30)
    }
    assert lefts == {0, 255}


def test_train_transform_seeded_is_reproducible() -> None:
    image = np.random.default_rng(3).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    a = train_transform(image, 24, seed=(5, 6)).numpy()
    b = train_transform(image, 24, seed=(5, 6)).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        train_transform(image, 24, seed=9), train_transform(image, 24, seed=9)
    )
    others = [train_transform(image, 24, seed=(s, 6)).numpy() for s in range(10)]
    assert any(not np.array_equal(a, o) for o in others)


def test_eval_transform_is_deterministic_resize() -> None:
    image = np.random.default_rng(4).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    a = eval_transform(image, (20, 25))
    b = eval_transform(image, (20, 25))
    assert a.shape == (20, 25, 3) and a.dtype == tf.float32
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(eval_transform(image, (30, 45)).numpy(), image)


def test_transform_argument_errors() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="image_size"):
        eval_transform(image, (1, 2, 3))
    with pytest.raises(ValueError, match="scales"):
        train_transform(image, 4, scales=(1.5,))


# ------------------------------------------------------------- image_dataset


def test_eval_dataset_structure_and_order(image_folder) -> None:
    root, files = image_folder
    ds = image_dataset(root, files, image_size=(16, 24), batch_size=4)
    spec_x, spec_y = ds.element_spec
    assert set(spec_x) == {"images", "index"}
    assert spec_x["images"].shape.as_list() == [None, 16, 24, 3]
    assert spec_x["images"].dtype == tf.float32 and spec_x["index"].dtype == tf.int64
    assert spec_y.shape.as_list() == [None, 3] and spec_y.dtype == tf.float32
    images, index, y = collect(ds)
    assert [len(b[1]) for b in ds] == [4, 4, 2]
    np.testing.assert_array_equal(index, np.arange(NUM_IMAGES))
    np.testing.assert_array_equal(y, files.labels[index])
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 1  # raw pixels
    images2, _, _ = collect(ds)
    np.testing.assert_array_equal(images, images2)


def test_grayscale_and_rgba_become_three_channels(image_folder) -> None:
    root, files = image_folder
    pair = files.subset(["gray.png", "rgba.png"])
    (x, _), *_ = list(image_dataset(root, pair, image_size=(20, 30), batch_size=2))
    images = x["images"].numpy()
    np.testing.assert_array_equal(images[0], np.full((20, 30, 3), 77.0))
    np.testing.assert_array_equal(images[1][0, 0], [10, 200, 30])  # alpha dropped


def test_training_dataset_shuffles_and_covers_each_index_once(image_folder) -> None:
    root, files = image_folder
    ds = image_dataset(root, files, image_size=12, batch_size=3, training=True, seed=0)
    orders = []
    for _ in range(3):
        images, index, y = collect(ds)
        assert images.shape == (NUM_IMAGES, 12, 12, 3) and images.dtype == np.float32
        assert sorted(index.tolist()) == list(range(NUM_IMAGES))
        np.testing.assert_array_equal(y, files.labels[index])
        orders.append(index.tolist())
    assert len({tuple(o) for o in orders}) > 1  # reshuffled each epoch
    assert orders[0] != list(range(NUM_IMAGES))


def test_training_dataset_seed_reproducible(image_folder) -> None:
    root, files = image_folder

    def first_epoch(seed: int):
        ds = image_dataset(root, files, image_size=12, batch_size=4, training=True, seed=seed)
        return collect(ds)

    a, b, c = first_epoch(1), first_epoch(1), first_epoch(2)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1]) or not np.array_equal(a[0], c[0])


def test_options_cache_shuffle_drop_remainder(image_folder) -> None:
    root, files = image_folder
    ds = image_dataset(
        root, files, image_size=8, batch_size=4, cache=True, shuffle=True, drop_remainder=True
    )
    assert ds.element_spec[0]["images"].shape.as_list() == [4, 8, 8, 3]
    for _ in range(2):
        _, index, y = collect(ds)
        assert len(index) == 8 and len(set(index.tolist())) == 8
        np.testing.assert_array_equal(y, files.labels[index])
    # training=True, shuffle=False: augmented but in order
    ds = image_dataset(root, files, image_size=8, batch_size=5, training=True, shuffle=False)
    np.testing.assert_array_equal(collect(ds)[1], np.arange(NUM_IMAGES))


def test_missing_file_is_reported_before_building(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "l.csv").write_text("file,a\nok.png,1\ngone.jpg,0\n")
    files = read_labels_csv(tmp_path / "l.csv")
    with pytest.raises(FileNotFoundError, match=r"1 of 2.*'gone.jpg' \(line 3\)"):
        image_dataset(tmp_path, files)
    with pytest.raises(ValueError, match="batch_size"):
        image_dataset(tmp_path, files.subset(["ok.png"]), batch_size=0)


def test_from_folder_split(image_folder) -> None:
    root, _ = image_folder
    ds, files = from_folder(
        root, root / "labels.csv", split="test", split_json=root / "split.json", image_size=10
    )
    assert files.filenames == ["rgba.png", "gray.png"]
    (x, y), *_ = list(ds)
    np.testing.assert_array_equal(x["index"].numpy(), [0, 1])
    np.testing.assert_array_equal(y.numpy(), files.labels)
    np.testing.assert_array_equal(x["images"].numpy()[1], np.full((10, 10, 3), 77.0))
    ds_all, all_files = from_folder(root, root / "labels.csv", batch_size=64)
    assert len(all_files) == NUM_IMAGES
    with pytest.raises(ValueError, match="together"):
        from_folder(root, root / "labels.csv", split="train")
    with pytest.raises(ValueError, match=r"available: \['test', 'train'\]"):
        from_folder(root, root / "labels.csv", split="val", split_json=root / "split.json")


@pytest.mark.slow
def test_real_miml_scene_first_training_batch() -> None:
    root = real_data_dir() / "miml_scene"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"real data not found at {root}")
    ds, files = from_folder(
        root / "images",
        root / "labels.csv",
        split="train",
        split_json=root / "split.json",
        image_size=64,
        batch_size=8,
        training=True,
    )
    assert len(files) == 1400 and files.labels.shape == (1400, 5)
    x, y = next(iter(ds))
    assert x["images"].shape == (8, 64, 64, 3) and x["images"].dtype == tf.float32
    assert x["index"].shape == (8,) and x["index"].dtype == tf.int64
    assert y.shape == (8, 5) and y.dtype == tf.float32
    index = x["index"].numpy()
    assert index.min() >= 0 and index.max() < 1400
    np.testing.assert_array_equal(y.numpy(), files.labels[index])
    pixels = x["images"].numpy()
    assert pixels.min() >= 0 and pixels.max() <= 255 and pixels.max() > 1
