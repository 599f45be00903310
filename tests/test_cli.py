"""Tests of the ``retdm-keras`` command line (in-process ``main`` calls on tiny fixtures)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from retdm_keras import cli, recipes, zoo
from retdm_keras.metrics import METRIC_NAMES

LABELS = ["red", "green", "blue"]
# Label sets cycled over the 24 images: every split sees each label.
LABEL_SETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1)]
FAST = [
    "--backbone",
    "tiny_cnn",
    "--image-size",
    "16",
    "--weights",
    "none",
    "--embed-dim",
    "8",
    "--epochs",
    "1",
    "1",
    "1",
    "--batch-size",
    "8",
    "--verbose",
    "0",
]


def _write_images(folder: Path, n: int = 24) -> list[tuple[str, tuple[int, int, int]]]:
    """``n`` colour-coded 16×16 PNGs: channel c is bright iff label c is on."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        labels = LABEL_SETS[i % len(LABEL_SETS)]
        base = np.array(labels, np.float32) * 200 + 30
        pixels = base + rng.normal(0, 10, (16, 16, 3))
        name = f"img{i:02d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / name)
        rows.append((name, labels))
    return rows


def _write_csv(path: Path, rows, names=LABELS) -> None:
    lines = [",".join(["filename", *names])]
    for name, labels in rows:
        cells = list(labels) + [0] * (len(names) - len(labels))
        lines.append(",".join([name, *(str(v) for v in cells[: len(names)])]))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def image_data(tmp_path_factory) -> dict[str, Path]:
    """An image folder, a one-hot CSV and a train 16 / val 4 / test 4 split file."""
    root = tmp_path_factory.mktemp("images")
    rows = _write_images(root / "images")
    _write_csv(root / "labels.csv", rows)
    names = [name for name, _ in rows]
    split = {"train": names[:16], "val": names[16:20], "test": names[20:]}
    (root / "split.json").write_text(json.dumps(split))
    return {
        "root": root,
        "images": root / "images",
        "labels": root / "labels.csv",
        "split": root / "split.json",
    }


@pytest.fixture(scope="module")
def trained(image_data) -> tuple[Path, int]:
    """One training run shared by the tests; returns (output folder, exit status)."""
    out = image_data["root"] / "run"
    status = cli.main(
        [
            "train",
            "--data-dir",
            str(image_data["images"]),
            "--labels",
            str(image_data["labels"]),
            "--split-json",
            str(image_data["split"]),
            "--out",
            str(out),
            *FAST,
        ]
    )
    return out, status


def test_train_writes_everything(trained):
    out, status = trained
    assert status == 0
    for name in ("model.keras", "labels.json", "history.json", "train_config.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "labels.json").read_text()) == LABELS
    history = json.loads((out / "history.json").read_text())
    assert list(history) == ["classifier", "metric", "joint"]
    assert all(len(epochs) == 1 and "loss" in epochs[0] for epochs in history.values())
    assert "val_loss" in history["joint"][0]
    config = json.loads((out / "train_config.json").read_text())
    assert config["backbone"] == "tiny_cnn" and config["epochs"] == [1, 1, 1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(METRIC_NAMES)
    assert all(math.isfinite(v) for v in metrics.values())
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_train_mixes_in_the_baseline_chosen_on_the_val_split(trained):
    out, _ = trained
    config = json.loads((out / "train_config.json").read_text())
    choice = config["baseline_choice"]  # the tuned LR's share, chosen on the 4 val images
    assert choice["val_rows"] == 4 and choice["train_rows"] == 16
    assert choice["chosen"] in ("RETDM", "mix", "baseline")
    assert set(choice["validation"]) == {f"{0.1 * i:g}" for i in range(11)}
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert model.baseline_weight == choice["weight"]


def test_val_fraction_holds_out_images_only_without_a_val_split(image_data, tmp_path, capsys):
    common = ["train", "--data-dir", str(image_data["images"]),
              "--labels", str(image_data["labels"]), *FAST]  # fmt: skip
    split = ["--split-json", str(image_data["split"])]
    status = cli.main([*common, *split, "--val-fraction", "0.25", "--out", str(tmp_path / "a")])
    assert status == 2 and "has a validation split" in capsys.readouterr().err
    # no split file: every image is training data, and train holds out 20 % for the choice
    assert cli.main([*common, "--out", str(tmp_path / "b")]) == 0
    assert "holding out 20%" in capsys.readouterr().out
    config = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert config["sizes"] == {"train": 19, "val": 5}
    assert config["baseline_choice"]["val_rows"] == 5


def test_evaluate_reproduces_metrics(trained, image_data, tmp_path, capsys):
    out, _ = trained
    capsys.readouterr()
    target = tmp_path / "eval.json"
    status = cli.main(
        [
            "evaluate",
            str(out / "model.keras"),
            "--data-dir",
            str(image_data["images"]),
            "--labels",
            str(image_data["labels"]),
            "--split-json",
            str(image_data["split"]),
            "--split",
            "test",
            "--json",
            str(target),
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "mAP" in printed and "hamming_loss" in printed
    expected = json.loads((out / "metrics.json").read_text())
    got = json.loads(target.read_text())
    assert list(got) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name


def test_predict_prints_top_k(trained, image_data, capsys):
    out, _ = trained
    paths = [str(image_data["images"] / f"img{i:02d}.png") for i in (0, 5, 23)]
    capsys.readouterr()
    assert cli.main(["predict", str(out / "model.keras"), *paths, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * 3
    for block, path in enumerate(paths):
        header, *label_lines = lines[3 * block : 3 * block + 3]
        assert header == path
        for line in label_lines:
            assert line.startswith("  ")
            fields = line.split()
            assert fields[0] in LABELS
            assert 0.0 <= float(fields[1]) <= 1.0
            assert fields[2:] in ([], ["*"])


def test_predict_missing_or_broken_image(trained, tmp_path, capsys):
    out, _ = trained
    missing = tmp_path / "no_such_image.png"
    assert cli.main(["predict", str(out / "model.keras"), str(missing)]) == 2
    err = capsys.readouterr().err
    assert "no_such_image.png" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    assert cli.main(["predict", str(out / "model.keras"), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retdm-keras: error:") and "broken.png" in err


def test_evaluate_label_mismatch(trained, image_data, tmp_path, capsys):
    out, _ = trained
    rows = [(f"img{i:02d}.png", (1, 0, 0, 1)) for i in range(4)]
    csv = tmp_path / "four_labels.csv"
    _write_csv(csv, rows, names=[*LABELS, "yellow"])
    status = cli.main(
        ["evaluate", str(out / "model.keras"), "--data-dir", str(image_data["images"]), "--labels"]
        + [str(csv)]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "3 labels" in err and "4 labels" in err


def test_debug_shows_traceback(trained, tmp_path):
    out, _ = trained
    with pytest.raises(cli.CLIError, match="missing.png"):
        cli.main(["--debug", "predict", str(out / "model.keras"), str(tmp_path / "missing.png")])


def test_bad_input_is_one_line_error(image_data, tmp_path, capsys):
    status = cli.main(
        ["train", "--data-dir", str(image_data["images"]), "--labels", str(tmp_path / "x.csv")]
        + ["--out", str(tmp_path / "o"), *FAST]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("retdm-keras: error: labels CSV not found") and "x.csv" in err
    assert cli.main(["train", "--out", str(tmp_path / "o")]) == 2  # no data at all
    assert cli.main(["predict"]) == 2  # argparse usage error


def _write_arff(path: Path, n: int, seed: int) -> None:
    """A MULAN-style ARFF: 4 numeric features, then 3 binary labels."""
    rng = np.random.default_rng(seed)
    lines = ["@relation tiny", *(f"@attribute f{j} numeric" for j in range(4))]
    lines += [f"@attribute {name} {{0,1}}" for name in LABELS]
    lines.append("@data")
    for i in range(n):
        labels = LABEL_SETS[i % len(LABEL_SETS)]
        features = [*(np.array(labels) + rng.normal(0, 0.1, 3)), rng.normal()]
        lines.append(",".join([*(f"{v:.4f}" for v in features), *(str(v) for v in labels)]))
    path.write_text("\n".join(lines) + "\n")


def test_train_and_evaluate_arff(tmp_path, capsys):
    _write_arff(tmp_path / "train.arff", 30, seed=1)
    _write_arff(tmp_path / "test.arff", 12, seed=2)
    xml = '<labels xmlns="http://mulan.sourceforge.net/labels">'
    xml += "".join(f'<label name="{name}"></label>' for name in LABELS) + "</labels>"
    (tmp_path / "labels.xml").write_text(xml)
    out = tmp_path / "run"
    args = ["train", "--arff-train", str(tmp_path / "train.arff")]
    args += [
        "--arff-test",
        str(tmp_path / "test.arff"),
        "--labels-xml",
        str(tmp_path / "labels.xml"),
    ]
    args += ["--val-fraction", "0.2", "--out", str(out), "--embed-dim", "8"]
    args += ["--epochs", "1", "1", "1", "--batch-size", "8", "--verbose", "0"]
    assert cli.main(args) == 0
    config = json.loads((out / "train_config.json").read_text())
    assert config["sizes"] == {"train": 24, "val": 6, "test": 12}
    assert config["input_dim"] == 4 and config["weights_used"] is None
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(METRIC_NAMES)
    capsys.readouterr()
    target = tmp_path / "eval.json"
    status = cli.main(
        ["evaluate", str(out / "model.keras"), "--arff", str(tmp_path / "test.arff")]
        + ["--labels-xml", str(tmp_path / "labels.xml"), "--json", str(target)]
    )
    assert status == 0
    got = json.loads(target.read_text())
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(metrics[name], abs=1e-6), name

    # calibrate on the rows train held out (same --val-fraction and --seed), compare on test
    report = tmp_path / "calibration.json"
    status = cli.main(
        ["calibrate", str(out / "model.keras"), "--arff-train", str(tmp_path / "train.arff")]
        + ["--arff-test", str(tmp_path / "test.arff"), "--labels-xml", str(tmp_path / "labels.xml")]
        + ["--val-fraction", "0.2", "--method", "global_f1", "--json", str(report)]
    )
    assert status == 0
    result = json.loads(report.read_text())
    assert result["validation"]["samples"] == 6 and result["test"]["samples"] == 12
    assert isinstance(result["rule"]["values"], float)
    assert cli.main(["calibrate", str(out / "model.keras"), "--arff-train", "x.arff"]) == 2
    assert "--val-fraction" in capsys.readouterr().err


def test_linear_skip_reaches_the_feature_model_and_the_recipe_check():
    """``--no-linear-skip`` gives a plain MLP embedder (the default has the linear path); with
    ``--recipe`` it is a model option the recipe holds, so it is refused."""
    for flag, expected in (([], True), (["--no-linear-skip"], False)):
        args = cli.build_parser().parse_args(
            ["train", "--arff-train", "t.arff", "--out", "o", "--embed-dim", "8", *flag]
        )
        model, _ = cli.build_model(args, LABELS, input_dim=4)
        assert model.image_embedder.linear_skip is expected
    assert cli.main(["train", "--recipe", "scene-features", "--no-linear-skip"]) == 2


def test_imagenet_download_failure_falls_back(monkeypatch, capsys):
    from retdm_keras.embedders import backbones

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- offline")

    monkeypatch.setattr(backbones, "_imagenet_file", offline)
    args = cli.build_parser().parse_args(
        ["train", "--data-dir", "d", "--labels", "l", "--out", "o", "--backbone", "mobilenet"]
        + ["--image-size", "32", "--embed-dim", "8"]
    )
    model, weights = cli.build_model(args, LABELS)
    assert weights is None and model.backbone == "mobilenet"
    err = capsys.readouterr().err
    assert "training from scratch (ImageNet weights unavailable: URL fetch failure" in err


def test_module_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "retdm_keras.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert command in result.stdout


def test_cli_choices_match_the_library():
    from retdm_keras.export import FORMATS
    from retdm_keras.metrics import METRIC_NAMES
    from retdm_keras.thresholds import METHODS
    from retdm_keras.tuning import DEFAULT_CHOICES

    assert cli.CALIBRATION_METHODS == METHODS
    assert set(cli.COMMANDS) == set(
        "train tune evaluate calibrate predict export publish zoo".split()
    )
    assert tuple(cli.EXPORT_SUFFIXES) == FORMATS
    assert set(cli.SEARCHABLE) == {*DEFAULT_CHOICES, "learning_rates"}
    assert set(METRIC_NAMES) <= set(cli.OBJECTIVE_BASES)


# --------------------------------------------------------------------------- #
# export / calibrate / tune
# --------------------------------------------------------------------------- #
def _copy_model(trained, folder: Path) -> Path:
    out, status = trained
    assert status == 0
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "tiny.keras"
    target.write_bytes((out / "model.keras").read_bytes())
    return target


def test_export_onnx_next_to_the_model_with_label_metadata(trained, tmp_path, capsys):
    from retdm_keras.export import read_metadata

    model = _copy_model(trained, tmp_path)
    capsys.readouterr()
    assert cli.main(["export", str(model), "--format", "onnx"]) == 0
    onnx_path = tmp_path / "tiny.onnx"  # default: next to the model, named after it
    assert onnx_path.is_file() and str(onnx_path) in capsys.readouterr().out
    metadata = read_metadata(onnx_path)
    assert metadata["label_names"] == LABELS and metadata["thresholds"] == 0.5


def test_export_all_with_benchmark(trained, tmp_path, capsys):
    from retdm_keras.export import read_metadata

    model = _copy_model(trained, tmp_path)
    out = tmp_path / "exports"
    args = ["export", str(model), "--format", "all", "--out", str(out), "--benchmark"]
    assert cli.main([*args, "--batch-sizes", "1", "2", "--repeats", "2"]) == 0
    for name in ("tiny.onnx", "tiny_saved_model", "tiny.tflite"):
        assert (out / name).exists(), name
        assert read_metadata(out / name)["label_names"] == LABELS
    latency = json.loads((out / "latency.json").read_text())
    assert set(latency["latency_ms"]) == {"keras", "onnx", "saved_model", "tflite"}
    assert set(latency["latency_ms"]["onnx"]) == {"1", "2"}
    assert "speed-up over Keras" in capsys.readouterr().out


def _calibrate(model: Path, image_data, *extra: str) -> int:
    return cli.main(
        ["calibrate", str(model), "--data-dir", str(image_data["images"])]
        + ["--labels", str(image_data["labels"]), "--split-json", str(image_data["split"])]
        + list(extra)
    )


def _predict_marks(model: Path, paths: list[str], capsys) -> dict[str, dict[str, bool]]:
    """``{image: {label: marked}}`` from ``retdm-keras predict`` (all labels shown)."""
    capsys.readouterr()
    assert cli.main(["predict", str(model), *paths, "--top-k", str(len(LABELS))]) == 0
    marks: dict[str, dict[str, bool]] = {}
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith("  "):
            current = marks.setdefault(line, {})
        else:
            fields = line.split()
            current[fields[0]] = fields[2:] == ["*"]
    return marks


def test_calibrate_per_class_save_then_predict_uses_the_thresholds(
    trained, image_data, tmp_path, capsys
):
    from retdm_keras.cli.predict import _read_image

    model = _copy_model(trained, tmp_path)
    saved, report = tmp_path / "calibrated.keras", tmp_path / "calibration.json"
    capsys.readouterr()
    status = _calibrate(
        model, image_data, "--method", "per_class_f1", "--save", str(saved), "--json", str(report)
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "val of" in printed and "0.5" in printed and "per_class_f1" in printed
    result = json.loads(report.read_text())
    assert result["rule"]["method"] == "per_class_f1" and len(result["rule"]["values"]) == 3
    assert result["validation"]["samples"] == 4 and result["test"]["samples"] == 4
    assert set(result["test"]["metrics"]) == {"0.5", "per_class_f1"}
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"

    loaded = cli.load_model(str(saved))
    assert loaded.top_k is None
    assert loaded.thresholds == pytest.approx(result["rule"]["values"])
    paths = [str(image_data["images"] / f"img{i:02d}.png") for i in (0, 3, 17, 22)]
    images = np.stack([_read_image(p, (16, 16)) for p in paths])
    probabilities = loaded.predict(images, verbose=0)
    expected = probabilities >= np.asarray(loaded.thresholds, np.float32)
    marks = _predict_marks(saved, paths, capsys)
    assert marks == {
        p: {name: bool(expected[i, j]) for j, name in enumerate(LABELS)}
        for i, p in enumerate(paths)
    }


def test_calibrate_top_k_save_then_predict_marks_k_labels(trained, image_data, tmp_path, capsys):
    model = _copy_model(trained, tmp_path)
    saved = tmp_path / "top2.keras"
    assert _calibrate(model, image_data, "--method", "top_k", "--k", "2", "--save", str(saved)) == 0
    loaded = cli.load_model(str(saved))
    assert loaded.top_k == 2 and loaded.thresholds is None
    paths = [str(image_data["images"] / f"img{i:02d}.png") for i in (1, 20)]
    marks = _predict_marks(saved, paths, capsys)
    assert all(sum(row.values()) == 2 for row in marks.values())


def test_calibrate_and_export_option_errors(trained, image_data, tmp_path, capsys):
    model = _copy_model(trained, tmp_path)
    assert _calibrate(model, image_data, "--method", "global_f1", "--k", "2") == 2
    assert "--k only applies to --method top_k" in capsys.readouterr().err
    assert _calibrate(model, image_data, "--save", str(tmp_path / "x.h5")) == 2
    assert ".keras" in capsys.readouterr().err
    assert _calibrate(model, image_data, "--val-split", "nope") == 2
    assert "'nope' is not in" in capsys.readouterr().err
    status = cli.main(["export", str(model), "--format", "tflite", "--opset", "13"])
    assert status == 2 and "--opset" in capsys.readouterr().err


def test_tune_writes_best_recipe_and_heatmap(image_data, tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", "--data-dir", str(image_data["images"]), "--labels", str(image_data["labels"])]
    args += ["--split-json", str(image_data["split"]), "--out", str(out), *FAST]
    args += ["--tuner", "random", "--max-trials", "2", "--epochs", "1", "1", "1"]
    assert cli.main(args) == 0
    recipe = json.loads((out / "best_recipe.json").read_text())
    assert {"lam", "mu"} <= set(recipe["hyperparameters"])
    assert recipe["objective"] == "val_mAP" and 0.0 <= recipe["score"] <= 1.0
    kwargs = recipe["model_kwargs"]
    assert kwargs["lam"] == recipe["hyperparameters"]["lam"]
    assert kwargs["mu"] == recipe["hyperparameters"]["mu"]
    assert kwargs["backbone"] == "tiny_cnn" and kwargs["label_names"] == LABELS
    assert recipe["epochs"] == [1, 1, 1]
    png = (out / "lam_mu.png").read_bytes()
    assert len(png) > 1000 and png.startswith(b"\x89PNG")
    assert json.loads((out / "tune_config.json").read_text())["max_trials"] == 2
    assert "best trial" in capsys.readouterr().out


def test_tune_needs_validation_data(image_data, tmp_path, capsys):
    split = json.loads(image_data["split"].read_text())
    no_val = tmp_path / "no_val.json"
    no_val.write_text(json.dumps({"train": split["train"], "test": split["test"]}))
    args = ["tune", "--data-dir", str(image_data["images"]), "--labels", str(image_data["labels"])]
    args += ["--split-json", str(no_val), "--out", str(tmp_path / "t"), *FAST]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("retdm-keras: error: tune scores every trial on validation data")
    assert "--val-split" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_tune_refuses_to_search_the_linear_path_of_images(image_data, tmp_path, capsys):
    args = ["tune", "--data-dir", str(image_data["images"]), "--labels", str(image_data["labels"])]
    args += ["--split-json", str(image_data["split"]), "--out", str(tmp_path / "t"), *FAST]
    assert cli.main([*args, "--search", "linear_skip"]) == 2
    err = capsys.readouterr().err
    assert "--search linear_skip is for feature vectors" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "t").exists()


def test_train_under_mirrored_strategy(image_data, tmp_path):
    out = tmp_path / "mirrored"
    status = cli.main(
        [
            "train",
            "--data-dir",
            str(image_data["images"]),
            "--labels",
            str(image_data["labels"]),
            "--out",
            str(out),
            "--strategy",
            "mirrored",
            *FAST,
        ]
    )
    assert status == 0
    history = json.loads((out / "history.json").read_text())
    assert list(history) == ["classifier", "metric", "joint"]
    assert (out / "model.keras").is_file()


def test_multiworker_strategy_needs_tf_config(image_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    status = cli.main(
        [
            "train",
            "--data-dir",
            str(image_data["images"]),
            "--labels",
            str(image_data["labels"]),
            "--out",
            str(tmp_path / "mw"),
            "--strategy",
            "multiworker",
            *FAST,
        ]
    )
    assert status == 2
    assert "TF_CONFIG" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# recipes and the zoo: train --recipe / publish / zoo list|fetch / tune --recipe
# --------------------------------------------------------------------------- #
def _write_recipe(path: Path, image_data, **changes) -> Path:
    """A tiny folder_csv recipe over the image fixture, its paths relative to the file."""
    folder = path.parent

    def rel(p: Path) -> str:
        return os.path.relpath(p, folder)

    config = {
        "name": "colours",
        "dataset": "24 colour squares",
        "data": {
            "format": "folder_csv",
            "image_dir": rel(image_data["images"]),
            "labels": rel(image_data["labels"]),
            "split_json": rel(image_data["split"]),
        },
        "model": {"backbone": "tiny_cnn", "image_size": 16, "embed_dim": 8},
        "training": {"epochs": [1, 1, 1], "batch_size": 8},
    }
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_train_recipe_then_publish_list_and_fetch(image_data, tmp_path, capsys):
    recipe = _write_recipe(tmp_path / "recipes" / "colours.yaml", image_data)
    entry = tmp_path / "runs" / "colours"
    assert cli.main(["train", "--recipe", str(recipe), "--out", str(entry), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "samples: train 16, val 4, test 4; backbone tiny_cnn" in out
    assert "test (4 samples):" in out and "hamming_loss" in out
    assert f"wrote zoo entry {entry}; publish it with: retdm-keras publish {entry}" in out
    assert zoo.verify_entry(entry)["recipe"]["name"] == "colours"

    registry = tmp_path / "zoo" / "registry.json"
    assert cli.main(["publish", str(entry), "--registry", str(registry)]) == 0
    assert "published colours version 1" in capsys.readouterr().out
    assert zoo.read_registry(registry)["models"]["colours"]["latest"] == "1"

    cache = tmp_path / "cache"
    listing = ["zoo", "list", "--registry", str(registry), "--cache-dir", str(cache)]
    assert cli.main(listing) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["name"][:3] == ["name", "version", "status"]
    assert rows["colours"][1:3] == ["1", "local"]

    fetch = ["zoo", "fetch", "colours", "--registry", str(registry), "--cache-dir", str(cache)]
    assert cli.main([*fetch, "--offline"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == cache / "colours" / "1" and (folder / "model.weights.h5").is_file()
    assert cli.main(listing) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["colours"][1:3] == ["1", "cached"]

    # zoo errors are one line: a name nobody published, a folder that is not an entry
    assert cli.main(["zoo", "fetch", "nothing", "--registry", str(registry), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retdm-keras: error: unknown zoo model 'nothing'")
    assert cli.main(["publish", str(tmp_path / "recipes"), "--registry", str(registry)]) == 2
    err = capsys.readouterr().err
    assert "not a complete zoo entry" in err and len(err.strip().splitlines()) == 1


def test_train_recipe_rejects_data_and_model_options(image_data, tmp_path, capsys):
    recipe = _write_recipe(tmp_path / "colours.yaml", image_data)
    base = ["train", "--recipe", str(recipe), "--out", str(tmp_path / "entry")]
    assert cli.main([*base, "--data-dir", str(image_data["images"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retdm-keras: error: --data-dir cannot be combined with --recipe")
    assert cli.main([*base, "--embed-dim", "512", "--epochs", "1", "1", "1"]) == 2
    assert "--embed-dim, --epochs cannot be combined with --recipe" in capsys.readouterr().err
    assert not (tmp_path / "entry").exists()
    bad = _write_recipe(tmp_path / "bad.yaml", image_data, model={"lam": "high"})
    assert cli.main(["train", "--recipe", str(bad), "--out", str(tmp_path / "e")]) == 2
    assert "model.lam: expected a number, got 'high'" in capsys.readouterr().err


def test_train_recipe_without_imagenet_weights_is_one_line(image_data, tmp_path, monkeypatch):
    from retdm_keras.embedders import backbones

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- offline")

    monkeypatch.setattr(backbones, "_imagenet_file", offline)
    model = {"backbone": "mobilenet", "weights": "imagenet", "image_size": 32}
    recipe = _write_recipe(tmp_path / "imagenet.yaml", image_data, model=model)
    args = ["train", "--recipe", str(recipe), "--out", str(tmp_path / "e"), "--verbose", "0"]
    assert cli.main(args) == 2
    with pytest.raises(recipes.WeightsUnavailableError, match="ImageNet weights"):
        cli.main(["--debug", *args])


def test_tune_recipe_writes_best_recipe_yaml(image_data, tmp_path, capsys):
    training = {"epochs": [2, 1, 1]}
    recipe = _write_recipe(tmp_path / "recipes" / "colours.yaml", image_data, training=training)
    out = tmp_path / "tune"
    args = ["tune", "--recipe", str(recipe), "--out", str(out), "--tuner", "random"]
    args += ["--max-trials", "1", "--epochs", "1", "1", "1", "--verbose", "0"]
    assert cli.main(args) == 0
    assert f"train --recipe {out / 'best_recipe.yaml'}" in capsys.readouterr().out
    best = json.loads((out / "best_recipe.json").read_text())
    assert best["epochs"] == [1, 1, 1]  # --epochs overrides the recipe's for the search
    assert best["model_kwargs"]["embed_dim"] == 8 and best["model_kwargs"]["label_names"] == LABELS
    tuned = recipes.load_recipe(out / "best_recipe.yaml")
    original = recipes.load_recipe(recipe)
    assert tuned.model.lam == best["hyperparameters"]["lam"]
    assert tuned.model.mu == best["hyperparameters"]["mu"]
    assert tuned.model == dataclasses.replace(
        original.model, lam=tuned.model.lam, mu=tuned.model.mu
    )
    assert tuned.training == original.training  # the recipe's own schedule
    for field in ("image_dir", "labels", "split_json"):  # relative paths still find the data
        assert tuned.path(field).resolve() == original.path(field).resolve()
    assert json.loads((out / "tune_config.json").read_text())["recipe"] == str(recipe)

    assert cli.main(["tune", "--recipe", str(recipe), "--out", str(out), "--margin", "0.5"]) == 2
    assert "--margin cannot be combined with --recipe" in capsys.readouterr().err


def test_train_refuses_to_overwrite_an_interrupted_run_without_resume(image_data, tmp_path, capsys):
    out = tmp_path / "interrupted"
    (out / "backup").mkdir(parents=True)
    args = [
        "train",
        "--data-dir",
        str(image_data["images"]),
        "--labels",
        str(image_data["labels"]),
        "--out",
        str(out),
        *FAST,
    ]
    assert cli.main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*args, "--resume"]) == 0  # an empty backup: starts from the beginning
    assert (out / "model.keras").is_file()
    assert not (out / "backup").exists()  # a finished run leaves nothing to resume


def test_verbose_option_takes_auto_or_a_level():
    parser = cli.build_parser()
    base = ["train", "--data-dir", "d", "--labels", "l.csv", "--out", "o"]
    assert parser.parse_args(base).verbose == "auto"
    assert parser.parse_args([*base, "--verbose", "2"]).verbose == 2
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--verbose", "3"])
