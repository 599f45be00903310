"""Tests of the ``retdm-keras`` command line (in-process ``main`` calls on tiny fixtures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retdm_keras import cli
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


def test_imagenet_download_failure_falls_back(monkeypatch, capsys):
    from retdm_keras import embedders

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- offline")

    monkeypatch.setattr(embedders, "_imagenet_file", offline)
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
    for command in ("train", "evaluate", "predict"):
        assert command in result.stdout
