"""The built-in ``coco`` recipe, end to end on the 256-image COCO subset (issue #15).

COCO itself cannot be downloaded here, so the path to a COCO checkpoint is proven on the
subset: its YOLO box labels are written out as official-style ``instances_*.json`` files
(by a converter written here, independent of the library's readers), the built-in recipe is
pointed at them with a tiny schedule and small images, and ``train_recipe`` runs it through
the same data code (``read_coco_instances``, ``build_datasets``) as the full recipe would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from retdm_keras import zoo
from retdm_keras.recipes import load_recipe, train_recipe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("imagenet_keras_home")]


def _class_names(subset: Path) -> list[str]:
    config = yaml.safe_load((subset / "object_detection" / "config.yaml").read_text())
    names = config["names"]
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def _instances_json(subset: Path, part: str, names: list[str], out: Path) -> dict:
    """COCO instances JSON for one part of the subset, from its YOLO label files."""
    images, annotations = [], []
    for image in sorted((subset / "images" / part).glob("*.jpg")):
        image_id = int(image.stem)
        images.append({"id": image_id, "file_name": image.name})
        labels = subset / "object_detection" / "labels" / part / f"{image.stem}.txt"
        if not labels.exists():
            continue  # no label file: an image without instances (the reader drops it)
        for line in labels.read_text().splitlines():
            if line.strip():
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(line.split()[0]) + 1,  # COCO ids start at 1
                    }
                )
    content = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
    }
    out.write_text(json.dumps(content))
    return content


def _expected_labels(content: dict, num_labels: int) -> dict[str, np.ndarray]:
    """file name -> multi-hot row, for images with at least one instance."""
    names = {im["id"]: im["file_name"] for im in content["images"]}
    rows: dict[str, np.ndarray] = {}
    for ann in content["annotations"]:
        row = rows.setdefault(names[ann["image_id"]], np.zeros(num_labels, np.float32))
        row[ann["category_id"] - 1] = 1.0
    return rows


def test_the_coco_recipe_runs_end_to_end_on_the_subset(shared_data, tmp_path):
    subset = shared_data / "coco_subset"
    if not (subset / "object_detection" / "config.yaml").exists():
        pytest.skip("the COCO subset is not in the shared data")
    names = _class_names(subset)
    assert len(names) == 80
    parts = {}
    for part in ("train2017", "val2017"):
        parts[part] = _instances_json(subset, part, names, tmp_path / f"instances_{part}.json")

    config = load_recipe("coco").to_dict()
    assert config["data"]["format"] == "coco"
    config["data"].update(
        train_annotations=str(tmp_path / "instances_train2017.json"),
        train_images=str(subset / "images" / "train2017"),
        test_annotations=str(tmp_path / "instances_val2017.json"),
        test_images=str(subset / "images" / "val2017"),
        val_fraction=0.1,
    )
    config["model"]["image_size"] = 64  # small images, a tiny schedule: a smoke run
    config["training"].update(epochs=[1, 1, 1], batch_size=16, feature_views=2)
    recipe_file = tmp_path / "coco-smoke.yaml"
    recipe_file.write_text(yaml.safe_dump(config))

    # 113 training images cannot show all 80 classes: the run says which it never saw
    with pytest.warns(UserWarning, match=r"label\(s\) are never positive"):
        entry = train_recipe(
            load_recipe(recipe_file),
            tmp_path / "entry",
            feature_cache=tmp_path / "cache",
            verbose=0,
        )

    metadata = zoo.verify_entry(entry)
    assert metadata["label_names"] == names
    expected_train = _expected_labels(parts["train2017"], 80)
    expected_test = _expected_labels(parts["val2017"], 80)
    sizes = metadata["training"]["sizes"]
    assert sizes["train"] + sizes["val"] == len(expected_train)  # empty images dropped
    assert metadata["training"]["test_samples"] == len(expected_test)
    metrics = json.loads((entry / zoo.METRICS_FILE).read_text())
    assert 0.0 <= metrics["average_precision"] <= 1.0 and np.isfinite(metrics["mAP"])

    model = zoo.load(entry)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    scores = model.predict(images, verbose=0)
    assert scores.shape == (2, 80) and np.all((scores >= 0) & (scores <= 1))
