"""Frozen-backbone training: feature extraction, the disk cache, training on features, CLI,
recipe key (``retdm_keras.frozen_features``, ``fit_stages(..., freeze_backbone=True)``)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_cli import FAST

from retdm_keras import RETDM, cli, fit_stages, frozen_features, recipes, tuning
from retdm_keras.data import from_folder
from retdm_keras.frozen_features import (
    FeatureCacheWarning,
    feature_dataset,
    prepare_frozen_data,
)
from retdm_keras.frozen_features import cache as frozen_cache
from retdm_keras.frozen_features import datasets as frozen_datasets

LABELS = ["red", "green", "blue"]
LABEL_SETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1)]
SIZE = 16


def _write_folder(root: Path, n: int = 24) -> dict[str, Path]:
    """``n`` colour-coded 20×20 PNGs (channel c bright iff label c), CSV, split file."""
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    lines, names = ["filename," + ",".join(LABELS)], []
    for i in range(n):
        labels = LABEL_SETS[i % len(LABEL_SETS)]
        pixels = np.array(labels, np.float32) * 180 + 40 + rng.normal(0, 25, (20, 20, 3))
        name = f"img{i:02d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(images / name)
        lines.append(",".join([name, *map(str, labels)]))
        names.append(name)
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    split = {"train": names[:16], "val": names[16:20], "test": names[20:]}
    (root / "split.json").write_text(json.dumps(split))
    return {
        "root": root,
        "images": images,
        "labels": root / "labels.csv",
        "split": root / "split.json",
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> dict[str, Path]:
    return _write_folder(tmp_path_factory.mktemp("frozen"))


def _datasets(folder):
    common = dict(split_json=folder["split"], image_size=SIZE, batch_size=8)
    train, _ = from_folder(
        folder["images"], folder["labels"], split="train", training=True, seed=0, **common
    )
    val, val_files = from_folder(folder["images"], folder["labels"], split="val", **common)
    return train, val, val_files


def _model(**kwargs) -> RETDM:
    keras.utils.set_random_seed(0)
    defaults = dict(backbone="tiny_cnn", image_size=SIZE, embed_dim=8, label_hidden_units=16)
    return RETDM(len(LABELS), **{**defaults, **kwargs})


def _fresh_features(model: RETDM, dataset) -> np.ndarray:
    """``backbone_features`` of every image of ``dataset``, by index, with no cache."""
    rows = {}
    for x, _ in dataset:
        h = model.backbone_features(x["images"]).numpy()
        for i, row in zip(x["index"].numpy(), h, strict=True):
            rows[int(i)] = row
    return np.stack([rows[i] for i in range(len(rows))])


def _weights(layer) -> list[np.ndarray]:
    return [np.array(w.numpy(), copy=True) for w in layer.weights]


def test_cached_features_equal_a_fresh_forward_pass(folder, tmp_path):
    train, val, _ = _datasets(folder)
    model = _model()
    first = prepare_frozen_data(model, train, val, views=3, cache_dir=tmp_path, verbose=0)
    again = prepare_frozen_data(model, train, val, views=3, cache_dir=tmp_path, verbose=0)
    assert len(list(tmp_path.glob("*.npz"))) == 3  # train views, train plain, val plain
    # the plain views, read back from disk, are a fresh forward pass of the eval pipeline
    np.testing.assert_allclose(again.val_features, _fresh_features(model, val), atol=1e-5)
    plain_train = from_folder(
        folder["images"],
        folder["labels"],
        split="train",
        split_json=folder["split"],
        image_size=SIZE,
        batch_size=8,
    )[0]
    np.testing.assert_allclose(again.bank_features, _fresh_features(model, plain_train), atol=1e-5)
    np.testing.assert_array_equal(again.train_views, first.train_views)
    assert again.train_views.shape == (16, 3, model.image_embedder.feature_dim)
    # view 0 is the plain view; the others are augmentations, unlike it and each other
    assert again.augmented_views == 2
    np.testing.assert_array_equal(again.train_views[:, 0], again.bank_features)
    assert not np.allclose(again.train_views[:, 1], again.train_views[:, 2])
    assert not np.allclose(again.train_views[:, 1], again.bank_features)


def test_plain_view_false_extracts_every_view_augmented(folder, tmp_path):
    train, val, _ = _datasets(folder)
    model = _model()
    reused = prepare_frozen_data(model, train, val, views=3, cache_dir=tmp_path, verbose=0)
    augmented = prepare_frozen_data(
        model, train, val, views=3, plain_view=False, cache_dir=tmp_path, verbose=0
    )
    assert augmented.augmented_views == 3
    assert augmented.train_views.shape == (16, 3, model.image_embedder.feature_dim)
    assert not np.allclose(augmented.train_views[:, 0], augmented.bank_features)
    # the same augmentation stream: the reused run's views 1..2 are passes 1..2 of this one
    np.testing.assert_allclose(reused.train_views[:, 1:], augmented.train_views[:, :2], atol=1e-6)
    # an explicit bank that is the plain twin counts too; any other does not
    plain = from_folder(
        folder["images"], folder["labels"], split="train", split_json=folder["split"],
        image_size=SIZE, batch_size=4,
    )[0]  # fmt: skip
    assert frozen_datasets._is_plain_twin(plain, train)
    assert not frozen_datasets._is_plain_twin(train, train)  # augmented: not a plain view
    assert not frozen_datasets._is_plain_twin(val, train)  # other images
    explicit = prepare_frozen_data(model, train, val, plain, views=3, cache_dir=tmp_path, verbose=0)
    np.testing.assert_allclose(explicit.train_views, reused.train_views, atol=1e-6)


def test_a_second_call_hits_the_cache_and_a_bad_entry_is_rebuilt(folder, tmp_path, monkeypatch):
    train, val, _ = _datasets(folder)
    model = _model()
    calls = []
    extract = frozen_features.extract_features

    def counting(*args, **kwargs):
        calls.append(kwargs.get("description"))
        return extract(*args, **kwargs)

    monkeypatch.setattr(frozen_cache, "extract_features", counting)  # what the cache calls
    first = prepare_frozen_data(model, train, val, views=2, cache_dir=tmp_path, verbose=0)
    assert len(calls) == 3
    manifests = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hit warns about nothing
        prepare_frozen_data(model, train, val, views=2, cache_dir=tmp_path, verbose=0)
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == manifests

    # a truncated array file: detected by its hash, rebuilt with a warning
    val_entry = next(
        p
        for p in tmp_path.glob("*.json")
        if json.loads(p.read_text())["description"]["data"]["num_samples"] == 4
    )
    arrays = val_entry.with_suffix(".npz")
    arrays.write_bytes(arrays.read_bytes()[:100])
    with pytest.warns(FeatureCacheWarning, match="stale or corrupt"):
        rebuilt = prepare_frozen_data(model, train, val, views=2, cache_dir=tmp_path, verbose=0)
    assert calls == ["validation set, plain view"]
    np.testing.assert_allclose(rebuilt.val_features, first.val_features, atol=1e-6)
    # an unreadable manifest: rebuilt too
    calls.clear()
    val_entry.write_text("{not json")
    with pytest.warns(FeatureCacheWarning):
        prepare_frozen_data(model, train, val, views=2, cache_dir=tmp_path, verbose=0)
    assert calls == ["validation set, plain view"]
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"

    # views=1 (no plain view to reuse) is the same single augmented pass: from the cache
    calls.clear()
    prepare_frozen_data(model, train, val, views=1, cache_dir=tmp_path, verbose=0)
    assert calls == []
    # other views, other backbone weights, a changed image: other keys, new extractions
    prepare_frozen_data(model, train, val, views=3, cache_dir=tmp_path, verbose=0)
    assert calls == ["training set, 2 augmented views"]
    calls.clear()
    other = _model()
    other.image_embedder.backbone.weights[0].assign(other.image_embedder.backbone.weights[0] * 2.0)
    prepare_frozen_data(other, train, val, views=2, cache_dir=tmp_path, verbose=0)
    assert len(calls) == 3

    # the same images in another folder, with other modification times: all from the cache
    calls.clear()
    copy = {
        key: tmp_path / "copy" / path.relative_to(folder["root"]) for key, path in folder.items()
    }
    shutil.copytree(folder["root"], copy["root"])
    image = copy["images"] / "img17.png"  # a validation image
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    copied_train, copied_val, _ = _datasets(copy)
    prepare_frozen_data(model, copied_train, copied_val, views=2, cache_dir=tmp_path, verbose=0)
    assert calls == []
    # an image whose bytes changed: its split is extracted again, the others are not
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(image)
    prepare_frozen_data(model, copied_train, copied_val, views=2, cache_dir=tmp_path, verbose=0)
    assert calls == ["validation set, plain view"]


def test_feature_dataset_draws_one_view_per_image_per_epoch():
    n, views = 12, 4
    features = np.zeros((n, views, 2), np.float32)
    features[..., 0] = np.arange(n)[:, None]
    features[..., 1] = np.arange(views)[None, :]
    labels = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    ds = feature_dataset(features, labels, batch_size=5, training=True, seed=3)
    drawn = []
    for _ in range(6):
        epoch = {}
        for x, y in ds:
            h, index = x["backbone_features"].numpy(), x["index"].numpy()
            np.testing.assert_array_equal(h[:, 0], index)  # the row of its own sample
            np.testing.assert_array_equal(y.numpy(), labels[index])
            epoch.update(zip(index.tolist(), h[:, 1].tolist(), strict=True))
        assert sorted(epoch) == list(range(n))  # every image once per epoch
        drawn.append([epoch[i] for i in range(n)])
    drawn = np.array(drawn)
    assert len(np.unique(drawn)) == views  # all views get drawn
    assert not np.all(drawn == drawn[0])  # new draws each epoch
    plain = feature_dataset(features[:, 0], labels, batch_size=5)
    np.testing.assert_array_equal(
        np.concatenate([x["index"].numpy() for x, _ in plain]), np.arange(n)
    )


@pytest.fixture(scope="module")
def frozen_run(folder, tmp_path_factory):
    """One frozen-backbone fit_stages run: (model, weights before, val data, cache dir)."""
    cache = tmp_path_factory.mktemp("feature_cache")
    train, val, val_files = _datasets(folder)
    model = _model(lam=0.5, mu=0.5)
    before = {
        part: _weights(layer)
        for part, layer in (
            ("backbone", model.image_embedder.backbone),
            ("projection", model.image_embedder.projection),
            ("classification_head", model.classification_head),
            ("label_embedder", model.label_embedder),
            ("reconstruction_head", model.reconstruction_head),
        )
    }
    histories = fit_stages(
        model,
        train,
        val,
        epochs=(2, 1, 2),
        learning_rates=(0.05, 0.05, 0.01),
        freeze_backbone=True,
        feature_views=2,
        feature_cache=cache,
        verbose=0,
    )
    return model, before, histories, val, val_files, cache, train


def test_frozen_training_keeps_the_backbone_bit_identical(frozen_run):
    model, before, histories, *_ = frozen_run
    assert list(histories) == ["classifier", "metric", "joint"]
    joint = histories["joint"].history
    for key in ("loss", "cls_loss", "metric_loss", "rec_loss", "val_loss"):
        assert np.all(np.isfinite(joint[key])), key
    backbone = _weights(model.image_embedder.backbone)
    assert len(backbone) == len(before["backbone"]) > 0
    for old, new in zip(before["backbone"], backbone, strict=True):
        np.testing.assert_array_equal(old, new)
    # everything above the backbone learned
    for part, layer in (
        ("projection", model.image_embedder.projection),
        ("classification_head", model.classification_head),
        ("label_embedder", model.label_embedder),
        ("reconstruction_head", model.reconstruction_head),
    ):
        changed = [
            not np.array_equal(old, new)
            for old, new in zip(before[part], _weights(layer), strict=True)
        ]
        assert any(changed), f"{part} did not train"
    # the backbone's trainable state is back; the flag is off again
    assert model.image_embedder.backbone.trainable
    assert not model.freeze_backbone


def test_frozen_model_predicts_raw_images_like_its_head_on_cached_features(frozen_run):
    model, _, _, val, val_files, cache, train = frozen_run
    from_disk = prepare_frozen_data(model, train, val, views=2, cache_dir=cache, verbose=0)
    u = model.image_embedder.embed_backbone_features(from_disk.val_features, training=False)
    # the prediction head on u: the classifier's sigmoid (mixed with label-set retrieval
    # scores when label_set_weight > 0)
    expected = model.probabilities_from_embedding(u)
    # and the tuned baseline on the pooled features, at its chosen share (fit_stages' default)
    pooled = from_disk.val_features if model.baseline_weight > 0 else None
    expected = np.asarray(model.blended_with_baseline(expected, pooled))
    predicted = model.predict(val, verbose=0)  # raw images, in order
    assert predicted.shape == (len(val_files), len(LABELS))
    np.testing.assert_allclose(predicted, expected, atol=1e-5)
    assert np.ptp(predicted) > 1e-3  # not a constant output


def test_frozen_model_keras_round_trip(frozen_run, tmp_path):
    model, _, _, val, *_ = frozen_run
    path = tmp_path / "frozen.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RETDM) and not loaded.freeze_backbone
    np.testing.assert_array_equal(loaded.predict(val, verbose=0), model.predict(val, verbose=0))


def test_freeze_backbone_flag_holds_through_the_stages():
    model = _model()
    model.freeze_backbone = True
    for stage in ("classifier", "metric", "joint"):
        model.set_stage(stage)
        assert not model.image_embedder.backbone.trainable
        assert not model.image_embedder.backbone.trainable_weights
    model.set_stage("joint")
    assert model.image_embedder.projection.trainable
    model.freeze_backbone = False
    assert model.image_embedder.backbone.trainable


def test_feature_batches_train_with_model_fit():
    model = _model()
    model.freeze_backbone = True
    h = np.random.default_rng(0).random((8, model.image_embedder.feature_dim), np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    x = {"backbone_features": h, "index": np.arange(8)}
    model.compile(optimizer="sgd")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["metric_loss"][0])
    assert model.predict({"backbone_features": h}, verbose=0).shape == (8, 3)


def test_mlp_and_bad_views_are_errors(folder):
    model = RETDM(3, backbone="mlp", input_dim=4, embed_dim=8)
    with pytest.raises(ValueError, match="image backbone"):
        model.freeze_backbone = True
    train, val, _ = _datasets(folder)
    with pytest.raises(ValueError, match="image backbone"):
        prepare_frozen_data(model, train, val, cache_dir=False, verbose=0)
    with pytest.raises(ValueError, match="views"):
        prepare_frozen_data(_model(), train, val, views=0, cache_dir=False, verbose=0)


def test_datasets_without_a_source_are_extracted_without_a_disk_cache(tmp_path):
    rng = np.random.default_rng(1)
    x = {"images": rng.random((10, SIZE, SIZE, 3)).astype("float32") * 255, "index": np.arange(10)}
    y = np.eye(3, dtype="float32")[np.arange(10) % 3]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model = _model()
    data = prepare_frozen_data(model, ds, views=2, cache_dir=tmp_path, verbose=0)
    # no features stored (only the converted backbone, in its own folder)
    assert [p.name for p in tmp_path.iterdir() if p.name != "backbones"] == []
    expected = model.backbone_features(x["images"]).numpy()
    # not augmented: every view, and the bank (first view), is the image itself
    np.testing.assert_allclose(data.train_views[:, 1], expected, atol=1e-5)
    np.testing.assert_allclose(data.bank_features, expected, atol=1e-5)


def train_argv(folder, out, *extra: str) -> list[str]:
    """``retdm-keras train`` on the colour folder with the CLI tests' tiny model and schedule."""
    return [
        "train",
        "--data-dir",
        str(folder["images"]),
        "--labels",
        str(folder["labels"]),
        "--split-json",
        str(folder["split"]),
        "--out",
        str(out),
        *FAST,
        *extra,
    ]


def test_cli_train_freeze_backbone(folder, tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = train_argv(
        folder,
        out,
        "--freeze-backbone",
        "--feature-views",
        "2",
        "--feature-cache",
        str(cache),
    )
    assert cli.main(argv) == 0
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()
    assert len(list(cache.glob("*.npz"))) == 3
    config = json.loads((out / "train_config.json").read_text())
    assert config["freeze_backbone"] is True and config["feature_views"] == 2
    capsys.readouterr()
    # the views option alone is an error
    bad = [a for a in argv if a != "--freeze-backbone"]
    assert cli.main([*bad[:-2]]) != 0
    assert "--feature-views" in capsys.readouterr().err


def test_recipe_key_is_parsed_and_checked():
    base = {
        "name": "frozen",
        "data": {"format": "folder_csv", "image_dir": "images", "labels": "labels.csv"},
    }
    recipe = recipes.Recipe.from_dict(
        {**base, "training": {"freeze_backbone": True, "feature_views": 3}}
    )
    assert recipe.training.freeze_backbone and recipe.training.feature_views == 3
    assert recipe.to_dict()["training"]["freeze_backbone"] is True
    assert not recipes.Recipe.from_dict(base).training.freeze_backbone
    for training, match in (
        ({"freeze_backbone": "yes"}, "training.freeze_backbone: expected true or false"),
        ({"feature_views": 0}, "training.feature_views: must be >= 1"),
        ({"feature_views": 2.5}, "training.feature_views: expected an integer"),
    ):
        with pytest.raises(recipes.RecipeError, match=match):
            recipes.Recipe.from_dict({**base, "training": training})
    arff = {"name": "f", "data": {"format": "arff", "train": "x.arff"}}
    with pytest.raises(recipes.RecipeError, match="freeze_backbone: needs an image backbone"):
        recipes.Recipe.from_dict(
            {**arff, "model": {"backbone": "mlp"}, "training": {"freeze_backbone": True}}
        )


def test_an_unwritable_cache_folder_only_warns(folder, tmp_path):
    _, val, _ = _datasets(folder)
    blocker = tmp_path / "a_file"  # the cache folder would have to be created inside a file
    blocker.write_text("not a folder")
    model = _model()
    with pytest.warns(FeatureCacheWarning, match="could not write the feature cache"):
        features, _ = frozen_features.cached_features(
            model, val, cache=frozen_features.FeatureCache(blocker / "cache"), verbose=0
        )
    np.testing.assert_allclose(features, _fresh_features(model, val), atol=1e-5)


def test_frozen_model_exports_like_any_model(frozen_run, tmp_path):
    from retdm_keras.export import export_model

    model, _, _, val, *_ = frozen_run
    images = np.concatenate([x["images"].numpy() for x, _ in val])
    path = export_model(model, tmp_path / "frozen_saved_model", format="saved_model")
    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    got = serving(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(got, model.predict(images, verbose=0), rtol=0, atol=1e-5)


def test_tune_searches_a_frozen_recipe_in_frozen_mode(folder, tmp_path, capsys, monkeypatch):
    class Built(BaseException):  # not an Exception: the CLI's error handler lets it through
        pass

    seen = {}

    def hypermodel(*args, **kwargs):
        seen.update(kwargs)
        raise Built

    monkeypatch.setattr(tuning, "RETDMHyperModel", hypermodel)
    path = tmp_path / "frozen.yaml"
    path.write_text(
        "name: frozen\n"
        f"data: {{format: folder_csv, image_dir: {folder['images']}, labels: {folder['labels']},"
        f" split_json: {folder['split']}, train_split: train, val_split: val}}\n"
        f"model: {{backbone: tiny_cnn, image_size: {SIZE}, embed_dim: 8}}\n"
        "training: {freeze_backbone: true, feature_views: 3, epochs: [1, 1, 1]}\n"
    )
    with pytest.raises(Built):
        cli.main(["tune", "--recipe", str(path), "--out", str(tmp_path / "out")])
    assert seen["freeze_backbone"] is True and seen["feature_views"] == 3
    assert "freeze_backbone" not in capsys.readouterr().err  # no warning any more


def test_views_are_extracted_from_the_same_pipeline_unshuffled(folder):
    from retdm_keras.data.folder_csv import source_of

    train, _, _ = _datasets(folder)
    copy = frozen_datasets._extraction_copy(train)
    original, unshuffled = source_of(train), source_of(copy)
    assert original["shuffle"] and not unshuffled["shuffle"]
    for key in ("augmentation", "image_size", "seed", "training", "batch_size", "files"):
        assert unshuffled[key] == original[key], key
    order = np.concatenate([x["index"].numpy() for x, _ in copy])
    np.testing.assert_array_equal(order, np.arange(len(order)))
    first = np.concatenate([x["images"].numpy() for x, _ in copy])
    again = np.concatenate([x["images"].numpy() for x, _ in copy])
    assert not np.allclose(first, again)  # new crops every pass, as in training
    val = _datasets(folder)[1]
    assert frozen_datasets._extraction_copy(val) is val  # not shuffled: used as it is
