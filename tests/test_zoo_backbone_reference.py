"""Zoo entries whose backbone is a reference to the standard ImageNet weights (issue #15).

A frozen-backbone model changes no backbone weight, so its entry stores only the other
weights (``heads.weights.h5``) and rebuilds the backbone from the ``keras.applications``
file; loading refuses a backbone that is not the one the heads were trained with.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from retdm_keras import RETDM, zoo
from retdm_keras.zoo.entry import backbone_sha256, load_head_weights, save_head_weights

SIZE = 64
pytestmark = pytest.mark.usefixtures("imagenet_keras_home")  # offline ImageNet weights


def _model(seed: int = 0) -> RETDM:
    import keras

    keras.utils.set_random_seed(seed)
    model = RETDM(
        3,
        backbone="mobilenet",
        backbone_width=0.25,
        weights="imagenet",
        image_size=SIZE,
        embed_dim=16,
        label_hidden_units=16,
        label_names=["a", "b", "c"],
    )
    model(np.zeros((1, SIZE, SIZE, 3), np.float32))
    # "training": every weight but the backbone's moves away from its initial value
    backbone = {id(v) for v in model.image_embedder.backbone.weights}
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if id(variable) not in backbone:
            variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
    return model


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def test_head_weights_round_trip_and_name_a_mismatch(tmp_path):
    source, target = _model(0), _model(1)
    save_head_weights(source, tmp_path / "heads.weights.h5")
    load_head_weights(target, tmp_path / "heads.weights.h5")
    x = _images()
    np.testing.assert_allclose(
        target.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6
    )
    other = RETDM(4, backbone="mobilenet", backbone_width=0.25, image_size=SIZE, embed_dim=16,
                  label_hidden_units=16)  # fmt: skip
    other(np.zeros((1, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        load_head_weights(other, tmp_path / "heads.weights.h5")


def test_an_entry_with_a_referenced_backbone_stores_only_the_heads(tmp_path):
    model = _model()
    full = zoo.write_entry(model, tmp_path / "full", metrics={"mAP": 0.5}, name="full")
    heads = zoo.write_entry(
        model, tmp_path / "heads", metrics={"mAP": 0.5}, name="heads", backbone_weights="imagenet"
    )
    assert sorted(p.name for p in heads.iterdir()) == sorted(zoo.HEADS_ENTRY_FILES)
    assert not (heads / zoo.WEIGHTS_FILE).exists()
    backbone_bytes = sum(v.numpy().nbytes for v in model.image_embedder.backbone.weights)
    saved = (full / zoo.WEIGHTS_FILE).stat().st_size - (
        heads / zoo.HEADS_WEIGHTS_FILE
    ).stat().st_size
    assert saved > 0.9 * backbone_bytes  # the backbone is not in the heads file
    metadata = json.loads((heads / zoo.METADATA_FILE).read_text())
    assert metadata["backbone_weights"]["weights"] == "imagenet"
    assert metadata["backbone_weights"]["sha256"] == backbone_sha256(model)
    config = json.loads((heads / zoo.CONFIG_FILE).read_text())
    assert config["config"]["weights"] == "imagenet"  # the loader rebuilds the ImageNet backbone
    assert "keras.applications" in (heads / zoo.CARD_FILE).read_text()

    loaded = zoo.load(heads)
    x = _images()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    preset = RETDM.from_preset(str(heads))  # keras-hub's spelling of the same thing
    np.testing.assert_allclose(preset.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)

    # through a registry and the cache, as zoo.load("name") does
    registry = tmp_path / "registry.json"
    record = zoo.publish(heads, registry=registry)
    assert sorted(record["files"]) == sorted(set(zoo.HEADS_ENTRY_FILES))
    by_name = zoo.load("heads", registry=registry, cache_dir=tmp_path / "cache", offline=True)
    np.testing.assert_allclose(
        by_name.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    assert not (tmp_path / "cache").exists()  # a complete local entry is read in place


def test_a_backbone_that_was_trained_is_refused_when_loaded(tmp_path):
    model = _model()
    kernel = model.image_embedder.backbone.weights[0]
    kernel.assign(kernel.numpy() * 1.01)  # fine-tuned: the ImageNet file would not restore it
    entry = zoo.write_entry(
        model, tmp_path / "e", metrics={"mAP": 0.5}, name="e", backbone_weights="imagenet"
    )
    with pytest.raises(zoo.ZooError, match="differ from those this entry was trained with"):
        zoo.load(entry)


def test_write_entry_refuses_a_reference_for_a_backbone_without_pretrained_weights(tmp_path):
    model = RETDM(3, backbone="mlp", input_dim=5, embed_dim=8, label_hidden_units=8)
    with pytest.raises(ValueError, match="no pretrained weights"):
        zoo.write_entry(model, tmp_path / "e", metrics={}, name="e", backbone_weights="imagenet")
    with pytest.raises(ValueError, match="must be None or 'imagenet'"):
        zoo.write_entry(model, tmp_path / "e", metrics={}, name="e", backbone_weights="random")


def test_from_preset_of_a_recipe_only_name_gives_the_commands():
    with pytest.raises(zoo.NoCheckpointError, match="retdm-keras train --recipe coco"):
        RETDM.from_preset("coco")
