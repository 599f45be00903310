"""The zoo as a user gets it: from a wheel, outside the checkout, offline (issue #15).

The wheel is built from this checkout and installed with ``--no-deps`` into a fresh virtual
environment whose only other packages are the dependencies (TensorFlow, Keras, ...) of the
test environment, reached through a ``.pth`` line. Everything then runs in a folder outside
the repository with ``RETDM_ZOO_OFFLINE=1`` and a ``KERAS_HOME`` that holds nothing but the
standard ImageNet MobileNetV2 file, so no file can come from the checkout, ``runs/`` or a
warm zoo cache:

* ``zoo.load("scene")`` scores the 400 MIML test images at average precision >= 0.94, and
  the 12 metrics equal those its registry record and model card publish;
* ``zoo.load("ucm")`` scores the 210 UC Merced test images as published (AP >= 0.95, its
  tuned baseline mixed in);
* ``RETDM.from_preset("scene-features")`` loads and scores the MULAN test file as published;
* ``retdm-keras evaluate scene`` / ``ucm`` on the MIML / UC Merced test splits print the same
  numbers;
* ``zoo.load("coco")`` fails with the recipe command;
* ``retdm-keras zoo list`` shows which entries are available.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import numpy as np

    import retdm_keras
    from retdm_keras import RETDM, zoo
    from retdm_keras.data import from_folder, load_arff
    from retdm_keras.metrics import evaluate

    report = {"module": retdm_keras.__file__}
    data = Path(os.environ["WHEEL_TEST_DATA"])
    records = zoo.read_registry()["models"]

    for name, folder in (("scene", "miml_scene"), ("ucm", "ucm")):
        model = zoo.load(name)
        test, files = from_folder(
            data / folder / "images", data / folder / "labels.csv", split="test",
            split_json=data / folder / "split.json",
            image_size=tuple(model.image_embedder.image_size), batch_size=32,
        )
        report[name] = evaluate(files.labels, model.predict(test, verbose=0))
        report[f"{name}_published"] = records[name]["versions"][records[name]["latest"]]["metrics"]
        report[f"{name}_baseline_weight"] = model.baseline_weight

    features = RETDM.from_preset("scene-features")
    mulan = load_arff(data / "mulan" / "scene" / "scene-test.arff",
                      labels_xml=data / "mulan" / "scene" / "scene.xml")
    report["scene_features"] = evaluate(mulan.labels, features.predict(mulan.features, verbose=0))
    latest = records["scene-features"]["latest"]
    report["scene_features_published"] = records["scene-features"]["versions"][latest]["metrics"]

    try:
        zoo.load("coco")
    except zoo.NoCheckpointError as err:
        report["coco"] = str(err)
    print("REPORT " + json.dumps(report))
    """
)


# what the wheel is not built from: version control, environments, build and run outputs
NOT_SOURCES = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs")


def _site_packages(prefix: Path) -> Path:
    paths = sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})
    return Path(paths["purelib"])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed (--no-deps), and an offline user folder."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    # from a copy without build outputs: setuptools builds in the source tree and never
    # prunes its build/ folder, so a wheel built in a checkout also packs modules deleted or
    # moved since an earlier build, and could hide a module missing from the package
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(dist)],
        check=True, cwd=root, capture_output=True,
    )  # fmt: skip
    wheel = next(dist.glob("retdm_keras-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    # the dependencies (TensorFlow, Keras, ...) from this environment, after the venv's own
    # site-packages; a plain path line does not run the editable install's own .pth hooks
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "test_dependencies.pth").write_text(str(_site_packages(Path(sys.prefix))) + "\n")
    keras_home = root / "keras_home"
    (keras_home / "models").mkdir(parents=True)
    return {"root": root, "venv": venv, "python": python, "keras_home": keras_home,
            "wheel": wheel}  # fmt: skip


def _env(installed: dict, shared: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETDM_", "PYTHON", "KERAS_")) and k != "VIRTUAL_ENV"
    }
    env.update(
        RETDM_ZOO_OFFLINE="1",
        KERAS_HOME=str(installed["keras_home"]),
        WHEEL_TEST_DATA=str(shared),
        TF_CPP_MIN_LOG_LEVEL="2",
        PATH=f"{installed['venv'] / 'bin'}:{env.get('PATH', '')}",
    )
    return env


def test_the_wheel_carries_the_zoo_and_the_recipes(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert "retdm_keras/zoo/registry.json" in names
    assert {f"retdm_keras/recipes/builtin/{n}.yaml" for n in ("scene", "coco")} <= names
    shipped = [n for n in names if n.startswith("retdm_keras/zoo/entries/")]
    assert any(n.endswith("heads.weights.h5") for n in shipped)  # scene: heads only
    assert any(n.endswith("model.weights.h5") for n in shipped)  # scene-features: all weights
    sizes = {
        info.filename: info.file_size
        for info in zipfile.ZipFile(installed["wheel"]).infolist()
        if info.filename.startswith("retdm_keras/zoo/")
    }
    assert max(sizes.values()) <= 20 * 2**20 and sum(sizes.values()) <= 30 * 2**20


def test_the_wheel_carries_exactly_the_package_modules(installed):
    """No module of an earlier build (a module since moved into a package) rides along."""
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    in_wheel = {n for n in names if n.endswith(".py")}
    in_tree = {
        path.relative_to(REPO).as_posix()
        for package in ("retdm_keras", "retdm_keras_cli")
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert in_wheel == in_tree, (sorted(in_wheel - in_tree), sorted(in_tree - in_wheel))


def test_a_user_outside_the_checkout_loads_and_scores_the_zoo_offline(installed, shared_data):
    source = shared_data / "keras_home" / "models" / WEIGHTS
    if not source.exists():
        pytest.skip("the MobileNetV2 ImageNet weights are not in the shared data")
    shutil.copy(source, installed["keras_home"] / "models" / WEIGHTS)
    user = installed["root"] / "user"
    user.mkdir(exist_ok=True)
    env = _env(installed, shared_data)
    run = subprocess.run(
        [str(installed["python"]), "-c", SCRIPT],
        cwd=user, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert report["module"].startswith(str(installed["venv"])), report["module"]

    assert report["scene"]["average_precision"] >= 0.94
    assert report["ucm"]["average_precision"] >= 0.95  # the tuned baseline mixed in (β > 0)
    assert report["ucm_baseline_weight"] > 0
    for name in ("scene", "scene_features", "ucm"):
        published = report[f"{name}_published"]
        for metric, value in report[name].items():
            assert value == pytest.approx(published[metric], abs=1e-4), (name, metric)
    assert "retdm-keras train --recipe coco" in report["coco"]

    # the command line reproduces the cards' numbers from the zoo names too
    for name, folder in (("scene", "miml_scene"), ("ucm", "ucm")):
        root = shared_data / folder
        evaluated = subprocess.run(
            [str(installed["venv"] / "bin" / "retdm-keras"), "evaluate", name,
             "--data-dir", str(root / "images"), "--labels", str(root / "labels.csv"),
             "--split-json", str(root / "split.json"), "--split", "test",
             "--json", str(user / f"{name}-test.json")],
            cwd=user, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stderr[-2000:]
        cli_metrics = json.loads((user / f"{name}-test.json").read_text())
        cli_metrics = cli_metrics.get("metrics", cli_metrics)
        for metric, value in report[f"{name}_published"].items():
            assert cli_metrics[metric] == pytest.approx(value, abs=1e-4), (name, metric)

    listing = subprocess.run(
        [str(installed["venv"] / "bin" / "retdm-keras"), "zoo", "list"],
        cwd=user, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr[-2000:]
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert "recipe only" in rows["coco"]
    for name in ("scene", "scene-features", "ucm"):
        assert rows[name].split()[2] == "local", rows[name]  # shipped inside the package
