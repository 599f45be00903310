"""Recipes: validation with field-named errors, paths, datasets, and a tiny end-to-end run."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from retdm_keras import RETDM, fit_stages, zoo
from retdm_keras.metrics import METRIC_NAMES
from retdm_keras.recipes import (
    ModelSpec,
    Recipe,
    RecipeError,
    build_datasets,
    build_model,
    builtin_recipe_names,
    builtin_recipes_dir,
    default_data_dir,
    expand_path,
    find_recipe,
    load_recipe,
    make_optimizer,
    optimizer_name,
    stage_learning_rates,
    train_recipe,
)
from retdm_keras.training import default_learning_rates, default_optimizer_name

LABELS = ["red", "green", "blue"]
LABEL_SETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1)]


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """12 colour-coded 16×16 PNGs, a one-hot CSV and a train/val/test split file."""
    folder = tmp_path / "colours"
    rng = np.random.default_rng(0)
    rows = ["filename," + ",".join(LABELS)]
    for i in range(12):
        labels = LABEL_SETS[i % len(LABEL_SETS)]
        pixels = np.array(labels, np.float32) * 200 + 30 + rng.normal(0, 10, (16, 16, 3))
        (folder / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"images/{i}.png")
        rows.append(f"{i}.png," + ",".join(map(str, labels)))
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    names = [f"{i}.png" for i in range(12)]
    split = {"train": names[:6], "val": names[6:9], "test": names[9:]}
    (folder / "split.json").write_text(json.dumps(split))
    return folder


def _tiny_recipe(folder: Path, **training) -> dict:
    return {
        "name": "colours",
        "dataset": "12 colour squares",
        "description": "A tiny recipe for the tests.",
        "data": {
            "format": "folder_csv",
            "image_dir": "colours/images",  # relative to the recipe file
            "labels": "colours/labels.csv",
            "split_json": "${COLOURS_DIR}/split.json",
        },
        "model": {
            "backbone": "tiny_cnn",
            "image_size": 16,
            "embed_dim": 8,
            "num_neighbors": 2,
            "label_hidden_units": 8,
        },  # fmt: skip
        "training": {
            "epochs": [1, 1, 1],
            "learning_rates": [0.01, 0.01, 0.001],
            "batch_size": 4,
            **training,
        },  # fmt: skip
    }


# --------------------------------------------------------------------------- validation
def test_the_shipped_recipes_validate():
    recipes = {p.stem: load_recipe(p) for p in sorted(builtin_recipes_dir().glob("*.yaml"))}
    assert set(recipes) >= {"scene", "scene-features", "mirflickr25k", "nuswide", "coco"}
    for stem, recipe in recipes.items():
        assert recipe.name == stem and recipe.dataset and recipe.data.format
    scene = recipes["scene"]
    # the scene checkpoint is `make demo`'s configuration: a frozen ImageNet MobileNetV2 at
    # 224 px, 4 views, and the library's defaults for everything the demo leaves default
    assert (scene.model.backbone, scene.model.weights, scene.model.image_size) == (
        "mobilenet_v2",
        "imagenet",
        224,
    )
    assert (scene.training.freeze_backbone, scene.training.feature_views) == (True, 4)
    defaults = inspect.signature(RETDM).parameters
    for field in ("embed_dim", "num_neighbors", "lam", "mu", "alpha", "margin", "embedding_norm"):
        assert getattr(scene.model, field) == defaults[field].default, field
    fit_defaults = inspect.signature(fit_stages).parameters
    assert scene.training.epochs == tuple(fit_defaults["epochs"].default)
    assert fit_defaults["learning_rates"].default is None  # the default optimiser's
    # frozen by default with pretrained weights; the built-in recipes say so explicitly
    assert fit_defaults["freeze_backbone"].default is None
    for name in ("scene", "coco", "mirflickr25k", "nuswide"):
        assert recipes[name].training.freeze_backbone is True, name
    assert scene.training.learning_rates == default_learning_rates("sgd")
    assert scene.training.optimizer == default_optimizer_name(scene.model.backbone) == "sgd"
    assert (scene.training.batch_size, scene.training.seed) == (32, 0)
    assert [scene.data.get(k) for k in ("train_split", "val_split", "test_split")] == [
        "train",
        "val",
        "test",
    ]
    assert recipes["scene-features"].model.backbone == "mlp"
    # its settings (λ = μ = 0.1) were chosen for the plain MLP; the linear path lowered val AP
    assert recipes["scene-features"].model.linear_skip is False
    assert ModelSpec().linear_skip is defaults["linear_skip"].default is True
    assert find_recipe("coco") == builtin_recipes_dir() / "coco.yaml"
    assert find_recipe("no-such-model") is None


def test_unset_optimizer_and_learning_rates_follow_the_backbone(tmp_path):
    """A recipe without ``optimizer`` / ``learning_rates`` (or with ``learning_rates: null``)
    trains with the backbone's defaults: Adam at 3e-4 / 3e-4 / 3e-5 for feature vectors,
    SGD at 0.01 / 0.01 / 0.001 for images; a named optimiser brings its own rates."""
    config = _tiny_recipe(tmp_path)
    del config["training"]["learning_rates"]
    recipe = Recipe.from_dict(config, source=str(tmp_path / "r.yaml"))
    assert (recipe.training.optimizer, recipe.training.learning_rates) == (None, None)
    training = recipe.training
    assert Recipe.from_dict(recipe.to_dict()).training == training  # round trip
    assert stage_learning_rates(training, "mlp") == (3e-4, 3e-4, 3e-5)
    assert stage_learning_rates(training, "tiny_cnn") == (0.01, 0.01, 0.001)
    adam = make_optimizer(training, "mlp")("classifier", 3e-4)
    assert type(adam) is keras.optimizers.Adam and adam.weight_decay == pytest.approx(3.0)
    sgd = make_optimizer(training, "tiny_cnn")("classifier", 0.01)
    assert type(sgd) is keras.optimizers.SGD and sgd.momentum == pytest.approx(0.9)
    assert sgd.weight_decay == pytest.approx(1e-4)
    # the decay of 3 is for Adam on feature vectors only: images keep 1e-4 even with Adam
    image_adam = make_optimizer(dataclasses.replace(training, optimizer="adam"), "tiny_cnn")
    assert image_adam("classifier", 1e-3).weight_decay == pytest.approx(1e-4)
    mlp_sgd = make_optimizer(dataclasses.replace(training, optimizer="sgd"), "mlp")
    assert mlp_sgd("classifier", 0.01).weight_decay == pytest.approx(1e-4)
    explicit = make_optimizer(dataclasses.replace(training, weight_decay=0.5), "mlp")
    assert explicit("classifier", 3e-4).weight_decay == pytest.approx(0.5)
    named = dataclasses.replace(training, optimizer="sgd")
    assert optimizer_name(named, "mlp") == "sgd"
    assert stage_learning_rates(named, "mlp") == (0.01, 0.01, 0.001)
    config["training"]["learning_rates"] = None
    assert Recipe.from_dict(config).training.learning_rates is None


def test_a_builtin_recipe_loads_by_its_name(tmp_path, monkeypatch):
    assert builtin_recipe_names() == sorted(p.stem for p in builtin_recipes_dir().glob("*.yaml"))
    recipe = load_recipe("scene-features")
    assert recipe.name == "scene-features"
    assert recipe.source == str(builtin_recipes_dir() / "scene-features.yaml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scene").mkdir()  # a folder of that name is not a recipe file: still built-in
    assert load_recipe("scene").name == "scene"
    with pytest.raises(FileNotFoundError, match=r"recipe not found: nope \(not a file, nor a "
                       r"built-in recipe: coco, "):  # fmt: skip
        load_recipe("nope")


def test_every_builtin_recipe_has_a_registry_record():
    """The zoo learns the recipe-only names from stub records in its packaged registry."""
    models = zoo.read_registry(zoo.packaged_registry_path())["models"]
    for name in builtin_recipe_names():
        assert name in models, f"built-in recipe {name!r} has no record in the packaged registry"
        assert models[name].get("recipe") == name
        if not models[name].get("versions"):
            assert models[name]["dataset"] == load_recipe(name).dataset


def test_the_data_folder_comes_only_from_the_environment(monkeypatch):
    monkeypatch.delenv("RETDM_DATA_DIR", raising=False)
    assert default_data_dir() is None
    with pytest.raises(RecipeError, match=r"w: uses \$\{RETDM_DATA_DIR\}, which is not set: "
                       r"set RETDM_DATA_DIR"):  # fmt: skip
        expand_path("${RETDM_DATA_DIR}/x", where="w")
    monkeypatch.setenv("RETDM_DATA_DIR", "~/data")
    assert default_data_dir() == Path("~/data").expanduser()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"lamda": 1.0}}, r"model\.lamda: unknown field"),
        ({"model": {"lam": "high"}}, r"model\.lam: expected a number, got 'high'"),
        ({"model": {"embed_dim": 8.5}}, r"model\.embed_dim: expected an integer"),
        ({"training": {"epochs": [1, 1]}}, r"training\.epochs: expected 3 values"),
        ({"training": {"optimizer": "rmsprop"}}, r"training\.optimizer: expected one of"),
        ({"data": {"format": "folder_csv", "labels": "l.csv"}}, r"data\.image_dir: required"),
        ({"data": {"format": "parquet"}}, r"data\.format: expected one of"),
        ({"data": {"format": "arff", "train": "t", "val_fraction": 1.5}}, r"data\.val_fraction"),
        ({"name": "Has Spaces"}, r"name: 'Has Spaces' must be lower-case"),
        ({"extra": 1}, r"extra: unknown field"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, change, message):
    config = _tiny_recipe(tmp_path)
    for key, value in change.items():
        if isinstance(value, dict) and key in ("model", "training"):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = _write(tmp_path / "bad.yaml", config)
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(path)
    assert str(info.value).startswith(str(path))


def test_round_trip_and_path_expansion(tmp_path, monkeypatch):
    path = _write(tmp_path / "colours.yaml", _tiny_recipe(tmp_path))
    recipe = load_recipe(path)
    assert Recipe.from_dict(recipe.to_dict(), source=str(path)) == recipe
    assert recipe.to_dict()["data"]["split_json"] == "${COLOURS_DIR}/split.json"  # as written
    assert recipe.path("image_dir") == tmp_path / "colours" / "images"
    with pytest.raises(RecipeError, match=r"COLOURS_DIR\} is not set"):
        recipe.path("split_json")
    monkeypatch.setenv("COLOURS_DIR", "/data/colours")
    assert recipe.path("split_json") == Path("/data/colours/split.json")
    monkeypatch.setenv("RETDM_DATA_DIR", str(tmp_path))
    assert expand_path("${RETDM_DATA_DIR}/x", where="w") == tmp_path / "x"


# --------------------------------------------------------------------------- data + model
def test_arff_recipe_builds_feature_data(tmp_path):
    lines = ["@relation tiny", *[f"@attribute f{i} numeric" for i in range(4)]]
    lines += ["@attribute a {0,1}", "@attribute b {0,1}", "@data"]
    rng = np.random.default_rng(1)
    for i in range(20):
        features = ",".join(f"{v:.3f}" for v in rng.random(4))
        lines.append(f"{features},{i % 2},{(i // 2) % 2}")
    (tmp_path / "tiny.arff").write_text("\n".join(lines) + "\n")
    config = {
        "name": "tiny-features",
        "data": {
            "format": "arff",
            "train": "tiny.arff",
            "test": "tiny.arff",
            "num_labels": 2,
            "val_fraction": 0.25,
        },  # fmt: skip
        "model": {"backbone": "mlp", "embed_dim": 8, "label_hidden_units": 8},
    }
    recipe = load_recipe(_write(tmp_path / "r.yaml", config))
    data = build_datasets(recipe)
    assert data.sizes == {"train": 15, "val": 5, "test": 20} and data.input_dim == 4
    x, y = next(iter(data.train))
    assert set(x) == {"features", "index"} and y.shape[1] == 2
    model = build_model(recipe, data)
    assert model.backbone == "mlp" and model.label_names == ["a", "b"]


def test_yolo_recipe_on_the_real_coco_subset(shared_data, tmp_path):
    root = shared_data / "coco_subset"
    if not root.is_dir():
        pytest.skip("coco_subset not available")
    labels, images = root / "object_detection" / "labels", root / "images"
    config = {
        "name": "coco-subset",
        "data": {
            "format": "yolo",
            "class_names": str(root / "object_detection" / "config.yaml"),
            "train_labels": str(labels / "train2017"),
            "train_images": str(images / "train2017"),
            "test_labels": str(labels / "val2017"),
            "test_images": str(images / "val2017"),
            "val_fraction": 0.25,
        },
        "model": {"backbone": "tiny_cnn", "image_size": 16},
        "training": {"batch_size": 8},
    }
    data = build_datasets(load_recipe(_write(tmp_path / "coco.yaml", config)))
    assert data.sizes == {"train": 94, "val": 32, "test": 128}  # 126 usable train images
    assert len(data.label_names) == 80 and data.test_labels.shape == (128, 80)
    x, y = next(iter(data.test))
    assert x["images"].shape == (8, 16, 16, 3) and y.shape == (8, 80)


# --------------------------------------------------------------------------- end to end
def test_train_recipe_writes_a_loadable_zoo_entry(tmp_path, image_folder, monkeypatch):
    monkeypatch.setenv("COLOURS_DIR", str(image_folder))
    recipe = load_recipe(_write(tmp_path / "colours.yaml", _tiny_recipe(tmp_path)))
    entry = train_recipe(recipe, tmp_path / "runs" / "colours", verbose=0)
    metadata = zoo.verify_entry(entry)
    assert metadata["recipe"] == recipe.to_dict()
    assert metadata["training"]["sizes"] == {"train": 6, "val": 3, "test": 3}
    metrics = json.loads((entry / "metrics.json").read_text())
    assert list(metrics) == list(METRIC_NAMES)
    model = zoo.load(entry)
    assert model.label_names == LABELS and model.backbone == "tiny_cnn"
    assert "retdm-keras train --recipe colours.yaml" in (entry / "README.md").read_text()

    registry = tmp_path / "zoo" / "registry.json"
    record = zoo.publish(entry, registry=registry)
    assert record["recipe"]["model"]["backbone"] == "tiny_cnn"
    assert record["local_dir"] == "../runs/colours"  # inside the same tree: relative
    rows = zoo.list_models(registry=registry, cache_dir=tmp_path / "cache")
    assert {r["name"]: r["status"] for r in rows}["colours"] == "local"
