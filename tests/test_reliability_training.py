"""Reliability of training on awkward label sets: rows with no labels, labels never seen,
a single label set, a batch larger than the data set, a label count the model does not have.

Models are tiny (``mlp`` on 6 features, or ``tiny_cnn`` on 16x16 images) and train 1 epoch
per stage; each test checks the warning and that every logged loss is finite.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from retdm_keras import RETDM, fit_stages
from retdm_keras.data import NoLabelsWarning, feature_dataset, from_folder, read_labels_csv

FEATURES = 6


def mlp_model(num_labels: int, **kwargs) -> RETDM:
    tf.keras.utils.set_random_seed(0)
    return RETDM(
        num_labels,
        backbone="mlp",
        input_dim=FEATURES,
        embed_dim=8,
        label_hidden_units=8,
        num_neighbors=3,
        **kwargs,
    )


def features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype("float32")


def assert_finite(histories) -> None:
    assert set(histories) == {"classifier", "metric", "joint"}
    for stage, history in histories.items():
        for key, values in history.history.items():
            if key.endswith("loss"):
                assert all(math.isfinite(v) for v in values), (stage, key, values)


def ours(record, pattern: str) -> list[str]:
    return [str(w.message) for w in record if pattern in str(w.message)]


# ------------------------------------------------------------------ rows with no labels


def test_a_row_with_no_labels_is_reported_kept_and_trains_the_classifier(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(6):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    cells = ["sea", "", "sea sky", "sky", "", "tree"]
    csv = tmp_path / "labels.csv"
    csv.write_text("filename,labels\n" + "".join(f"{i}.png,{c}\n" for i, c in enumerate(cells)))
    with pytest.warns(NoLabelsWarning, match=r"2 of 6 row\(s\) have an empty labels cell.*3, 6"):
        files = read_labels_csv(csv)
    np.testing.assert_array_equal(files.labels.sum(axis=1), [1, 0, 2, 1, 0, 1])
    with pytest.warns(NoLabelsWarning):
        ds, files = from_folder(tmp_path, csv, image_size=16, batch_size=4, training=True)
    tf.keras.utils.set_random_seed(0)
    model = RETDM(
        files.num_labels, backbone="tiny_cnn", image_size=16, embed_dim=8, label_hidden_units=8
    )
    history = fit_stages(model, ds, epochs=(1, 0, 0), verbose=0)["classifier"].history
    assert all(math.isfinite(v) for v in history["loss"])
    model.prepare_training(ds)
    # the all-zero set is one of the label sets the metric loss contrasts with
    assert [0, 0, 0] in model.training_set.neighbors.unique_sets.tolist()


def test_rows_with_no_labels_train_through_all_stages() -> None:
    y = np.zeros((10, 4), "float32")
    y[::2, 0] = 1.0
    y[1::3, 3] = 1.0  # rows 3, 5 and 9 have no label
    data = feature_dataset(features(10), y, batch_size=4, training=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # labels 1 and 2 are never positive
        assert_finite(fit_stages(mlp_model(4), data, epochs=(1, 2, 1), verbose=0))


def test_one_hot_all_zero_rows_are_not_reported(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("file,a,b\nx.jpg,0,0\ny.jpg,1,0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoLabelsWarning)
        read_labels_csv(tmp_path / "l.csv")


# ------------------------------------------------------------------ label values


@pytest.mark.parametrize("value", [2.0, 0.5, float("nan")])
def test_labels_other_than_0_and_1_are_an_error_naming_the_row(value: float) -> None:
    y = np.eye(3, dtype="float32")[np.arange(8) % 3]
    y[5, 2] = value
    with pytest.raises(ValueError, match=r"0 or 1.*row 5, column 2"):
        feature_dataset(features(8), y, batch_size=4)
    # a dataset built by hand: caught when the training set is prepared, naming the label
    data = tf.data.Dataset.from_tensor_slices(
        ({"features": features(8), "index": np.arange(8)}, y)
    ).batch(4)
    model = mlp_model(3, label_names=["cat", "dog", "sea"])
    with pytest.raises(ValueError, match=r"0 or 1.*sample 5, label 'sea'"):
        model.prepare_training(data)


# ------------------------------------------------------------------ wrong label count


def test_a_label_count_the_model_does_not_have_is_an_error() -> None:
    model = mlp_model(3)
    y = np.eye(4, dtype="float32")[np.arange(8) % 4]
    with pytest.raises(ValueError, match=r"labels have shape \(4,\) per sample.*num_labels=3"):
        model.prepare_training(feature_dataset(features(8), y, batch_size=4))
    with pytest.raises(ValueError, match="num_labels=3"):
        fit_stages(model, feature_dataset(features(8), y, batch_size=4), epochs=(0, 1, 0))


# ------------------------------------------------------------------ degenerate sets


def test_a_single_label_set_warns_and_the_metric_loss_is_masked() -> None:
    y = np.tile([[1.0, 0.0, 1.0]], (8, 1)).astype("float32")
    model = mlp_model(3)
    with pytest.warns(UserWarning) as record:
        histories = fit_stages(
            model, feature_dataset(features(8), y, batch_size=4), epochs=(1, 1, 1), verbose=0
        )
    assert ours(record, "single distinct label set")
    assert_finite(histories)
    for stage in ("metric", "joint"):
        assert histories[stage].history["metric_loss"] == [0.0]
    # the metric space never trained: predictions are the classifier's alone, with no
    # retrieval softmax over the one set (Keras warns about a softmax over one value)
    x = features(8)
    assert model.label_set_weight > 0 and len(model.label_sets) == 1
    head = tf.sigmoid(model.classification_head.logits(model.embed_images(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities, head, rtol=1e-5, atol=1e-6)


def test_labels_never_positive_warn_once_naming_them() -> None:
    names = ["cat", "dog", "sea", "sky"]
    y = np.zeros((10, 4), "float32")
    y[::2, 0] = 1.0
    y[1::2, 3] = 1.0  # "dog" and "sea" never positive (and every row has a label)
    model = mlp_model(4, label_names=names)
    data = feature_dataset(features(10), y, batch_size=4, training=True, seed=0)
    with pytest.warns(UserWarning) as record:
        model.prepare_training(data)
    assert ours(record, "never positive") == [
        "2 of 4 label(s) are never positive in the training set (10 samples): 'dog', 'sea'; "
        "the classifier only sees them as negatives"
    ]
    with pytest.warns(UserWarning, match="never positive") as record:
        histories = fit_stages(mlp_model(4), data, epochs=(1, 1, 1), verbose=0)
    assert "'1', '2'" in ours(record, "never positive")[0]  # label indices without names
    assert_finite(histories)


def test_batch_size_larger_than_the_data_set_warns_once_and_trains() -> None:
    y = np.eye(3, dtype="float32")[np.arange(10) % 3]
    y[::4, 1] = 1.0
    data = feature_dataset(features(10), y, batch_size=64, training=True, seed=0)
    model = mlp_model(3)
    with pytest.warns(UserWarning) as record:
        model.prepare_training(data)
    assert ours(record, "batch size") == [
        "batch size 64 is larger than the training set (10 samples): one step per epoch, "
        "each over the whole set"
    ]
    with pytest.warns(UserWarning, match="batch size 64 is larger") as record:
        histories = fit_stages(mlp_model(3), data, epochs=(1, 1, 1), verbose=0)
    assert_finite(histories)
    assert all(h.params["steps"] == 1 for h in histories.values())
    dropped = feature_dataset(features(10), y, batch_size=64, drop_remainder=True)
    with pytest.raises(ValueError, match=r"training data is empty \(batch size 64"):
        mlp_model(3).prepare_training(dropped)


def test_an_ordinary_training_set_raises_none_of_these_warnings() -> None:
    y = np.eye(3, dtype="float32")[np.arange(12) % 3]
    y[::5, 2] = 1.0
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        mlp_model(3).prepare_training(feature_dataset(features(12), y, batch_size=5))
    assert not [w for w in record if issubclass(w.category, UserWarning)]
