"""A pretrained image backbone trains frozen by default (``fit_stages(freeze_backbone=None)``,
``retdm-keras train`` without ``--[no-]freeze-backbone``, recipes without the key); a
backbone from scratch and feature vectors train as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_frozen_backbone import _datasets, _model, _write_folder, train_argv

from retdm_keras import RETDM, cli, fit_stages, recipes, zoo
from retdm_keras.training import default_freeze_backbone


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("frozen_default"))


def _backbone_weights(model: RETDM) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.image_embedder.backbone.weights]


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_pretrained_flag_follows_the_weights_and_is_saved(tmp_path):
    scratch = _model()
    assert scratch.image_embedder.pretrained is False
    assert default_freeze_backbone(scratch) is False
    # tiny_cnn has no weight files: pretrained_backbone=True stands in for trained weights
    trained = _model(pretrained_backbone=True)
    assert trained.image_embedder.pretrained is True
    assert default_freeze_backbone(trained) is True
    path = tmp_path / "m.keras"
    trained.save(path)
    import keras

    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["weights"] is None  # the file carries the weights...
    assert loaded.image_embedder.pretrained is True  # ...and says they were trained
    assert default_freeze_backbone(loaded) is True
    # files saved before the flag existed keep training the way they did (fine-tuning)
    config = trained.get_config()
    del config["pretrained_backbone"]
    assert RETDM.from_config(config).image_embedder.pretrained is False
    features = RETDM(3, backbone="mlp", input_dim=4, embed_dim=8, pretrained_backbone=True)
    assert features.image_embedder.pretrained is False
    assert default_freeze_backbone(features) is False


@pytest.mark.usefixtures("imagenet_keras_home")
def test_imagenet_weights_make_a_pretrained_backbone():
    model = RETDM(3, backbone="mobilenet", weights="imagenet", image_size=32, embed_dim=8)
    assert model.image_embedder.pretrained and default_freeze_backbone(model)
    explicit = RETDM(
        3,
        backbone="mobilenet",
        weights="imagenet",
        image_size=32,
        embed_dim=8,
        pretrained_backbone=False,
    )
    assert not default_freeze_backbone(explicit)
    # the shipped zoo entry (saved before the flag) names its ImageNet backbone: frozen too
    assert default_freeze_backbone(zoo.load("scene"))


@pytest.mark.parametrize(
    ("pretrained", "freeze", "backbone_moves"),
    [(True, None, False), (True, False, True), (False, None, True)],
)
def test_fit_stages_freezes_only_a_pretrained_backbone_by_default(
    folder, tmp_path, pretrained, freeze, backbone_moves
):
    train, val, _ = _datasets(folder)
    model = _model(pretrained_backbone=pretrained)
    before = _backbone_weights(model)
    projection = model.image_embedder.projection.kernel.numpy().copy()
    cache = tmp_path / "cache"
    kwargs = {} if freeze is None else {"freeze_backbone": freeze}
    fit_stages(model, train, val, epochs=(1, 0, 0), feature_cache=cache, verbose=0, **kwargs)
    assert _changed(before, _backbone_weights(model)) is backbone_moves
    assert not np.array_equal(projection, model.image_embedder.projection.kernel.numpy())
    # frozen training extracted (and cached) the backbone's features; fine-tuning did not
    assert cache.exists() is not backbone_moves
    assert model.freeze_backbone is False  # a way of training, not kept on the model


def _pretrained(args: list[str]) -> list[str]:
    """FAST's model with ImageNet weights: MobileNet 0.25 at 32 px instead of tiny_cnn, and
    the classifier stage alone (it trains the backbone unless it is frozen)."""
    args = [*args, "--epochs", "1", "0", "0"]
    args[args.index("--backbone") + 1] = "mobilenet"
    args[args.index("--image-size") + 1] = "32"
    args[args.index("--weights") + 1] = "imagenet"
    return args


@pytest.mark.usefixtures("imagenet_keras_home")
def test_cli_train_freezes_imagenet_weights_unless_told(folder, tmp_path, capsys):
    out = tmp_path / "auto"
    assert cli.main(_pretrained(train_argv(folder, out, "--feature-cache", "none"))) == 0
    assert "the pretrained backbone stays frozen" in capsys.readouterr().out
    config = json.loads((out / "train_config.json").read_text())
    assert config["freeze_backbone"] is True
    reference = RETDM(3, backbone="mobilenet", weights="imagenet", image_size=32, embed_dim=8)
    saved = cli_model(out)
    assert not _changed(_backbone_weights(reference), _backbone_weights(saved))

    out = tmp_path / "tuned"
    assert cli.main(_pretrained(train_argv(folder, out, "--no-freeze-backbone"))) == 0
    assert "stays frozen" not in capsys.readouterr().out
    assert json.loads((out / "train_config.json").read_text())["freeze_backbone"] is False
    assert _changed(_backbone_weights(reference), _backbone_weights(cli_model(out)))


def cli_model(out) -> RETDM:
    import keras

    return keras.saving.load_model(out / "model.keras")


def test_cli_frozen_only_options_are_errors_where_nothing_is_frozen(folder, tmp_path, capsys):
    # FAST trains tiny_cnn from scratch (--weights none): not frozen by default
    out = tmp_path / "o"
    assert cli.main(train_argv(folder, out, "--feature-views", "2")) == 2
    err = capsys.readouterr().err
    assert "--feature-views only apply with a frozen backbone" in err and "--freeze-backbone" in err
    argv = _pretrained(train_argv(folder, out, "--no-freeze-backbone", "--feature-cache", "d"))
    assert cli.main(argv) == 2
    assert "--feature-cache do not apply with --no-freeze-backbone" in capsys.readouterr().err
    arff = ["train", "--arff-train", "t.arff", "--out", str(out), "--feature-views", "2"]
    assert cli.main(arff) == 2
    assert "--feature-views only apply to images" in capsys.readouterr().err
    assert cli.main([*arff[:-2], "--freeze-backbone"]) == 2
    assert "--freeze-backbone needs images" in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written


def test_recipe_key_defaults_to_none_and_takes_false():
    base = {
        "name": "r",
        "data": {"format": "folder_csv", "image_dir": "images", "labels": "labels.csv"},
    }
    assert recipes.Recipe.from_dict(base).training.freeze_backbone is None
    assert recipes.Recipe.from_dict(base).to_dict()["training"]["freeze_backbone"] is None
    off = recipes.Recipe.from_dict({**base, "training": {"freeze_backbone": False}})
    assert off.training.freeze_backbone is False
    arff = {"name": "f", "data": {"format": "arff", "train": "x.arff"}, "model": {}}
    arff["model"]["backbone"] = "mlp"
    assert recipes.Recipe.from_dict(arff).training.freeze_backbone is None


def test_a_training_set_too_large_to_hold_frozen_fine_tunes_with_a_warning(folder, monkeypatch):
    from retdm_keras.frozen_features import memory
    from retdm_keras.training import resolve_freeze_backbone

    train, _, _ = _datasets(folder)  # 16 training images in batches of 8
    model = _model(pretrained_backbone=True)
    dim = model.backbone_features(np.zeros((1, 16, 16, 3), "float32")).shape[-1]
    need = 16 * (4 + 1) * dim * 4  # 4 views and the plain one, float32
    assert memory.frozen_feature_bytes(model, train, views=4) == need
    assert memory.frozen_feature_bytes(model, train.unbatch(), views=4) is None
    assert memory.frozen_feature_bytes(model, train.repeat(), views=4) is None
    assert memory.frozen_feature_bytes(model, [np.zeros((8, 16, 16, 3))], views=4) is None

    monkeypatch.setattr(memory, "physical_memory", lambda: 4 * need)  # a quarter: fits
    assert resolve_freeze_backbone(model, train, None, 4) is True
    monkeypatch.setattr(memory, "physical_memory", lambda: 4 * need - 4)
    with pytest.warns(UserWarning, match="fine-tuning the pretrained backbone instead"):
        assert resolve_freeze_backbone(model, train, None, 4) is False
    assert resolve_freeze_backbone(model, train, None, 1) is True  # 2 views fit
    assert resolve_freeze_backbone(model, train, True, 4) is True  # asked for: obeyed
    assert resolve_freeze_backbone(model, train.repeat(), None, 4) is True  # size unknown
    assert resolve_freeze_backbone(_model(), train, None, 4) is False  # from scratch
    arrays = ({"images": np.zeros((4, 16, 16, 3), "float32"), "index": np.arange(4)}, None)
    assert resolve_freeze_backbone(model, arrays, None, 4) is False  # not a tf.data pipeline
    monkeypatch.setattr(memory, "physical_memory", lambda: None)  # platform does not say
    assert resolve_freeze_backbone(model, train, None, 4) is True
