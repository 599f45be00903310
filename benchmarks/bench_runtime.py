"""The ``runtime`` section: the backbone in ONNX Runtime against Keras (issue #29).

All on MIML scene images with MobileNetV2 (ImageNet) at ``settings.frozen_image_size`` px,
batch ``settings.batch_size``, in one process, one after the other:

1. **Extraction.** Images/s over the 1,400 training images (decoding and resizing included,
   the same ``tf.data`` pipeline for every method, each warmed up on one batch first):
   ``keras.Model.predict`` of the backbone's feature model (the reference the issue names),
   the library's extraction through Keras (``runtime="keras"``: a compiled function, what it
   ran before), and through ONNX Runtime (the default on a CPU); the plain view and one
   augmented pass. Parity: ``relative_difference`` of ONNX Runtime's plain-view features
   against ``keras.Model.predict``'s, and of the augmented pass against the library's Keras
   pass (the same crops: each pass reads a new pipeline). Where the time goes: the pipeline
   alone, ONNX Runtime alone on images held in memory, and the one-off conversion.
2. **Prediction latency.** The ``scene`` zoo model's ``predict`` on 1 and 32 raw images held
   in memory, median over repeats, ``backbone_runtime="keras"`` against the default.
3. **Cold-cache wall time** (full mode): ``make demo``'s script and ``retdm-keras train
   --recipe scene``, each run twice in a subprocess from an empty feature cache and an empty
   ``KERAS_HOME`` (ImageNet weights linked in), with ``RETDM_BACKBONE_RUNTIME=keras`` (before)
   and with the default (after).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from bench_common import log

from retdm_keras import RETDM, zoo
from retdm_keras.backbone_runtime import (
    OnnxBackbone,
    backbone_function,
    clear_backbone_functions,
    convert_backbone,
    relative_difference,
)
from retdm_keras.data import from_folder
from retdm_keras.frozen_features import extract_features

REPO = Path(__file__).resolve().parents[1]
LATENCY_REPEATS = {"quick": 10, "full": 30}


def _pipeline(scene: Path, size: int, batch: int, training: bool):
    dataset, files = from_folder(
        scene / "images",
        scene / "labels.csv",
        split="train",
        split_json=scene / "split.json",
        image_size=size,
        batch_size=batch,
        training=training,
        shuffle=False,
        seed=0,
    )
    return dataset, len(files)


def _rate(seconds: float, images: int) -> dict:
    return {"seconds": seconds, "images": images, "images_per_s": images / seconds}


def _timed(run, images: int) -> tuple[dict, object]:
    started = time.perf_counter()
    out = run()
    return _rate(time.perf_counter() - started, images), out


def extraction(scene: Path, size: int, batch: int, store: str) -> dict:
    """Images/s of the three ways through the backbone, on the same pipeline."""
    model = RETDM(5, backbone="mobilenet_v2", weights="imagenet", image_size=size)
    embedder = model.image_embedder
    plain, n = _pipeline(scene, size, batch, training=False)
    augmented, _ = _pipeline(scene, size, batch, training=True)
    inputs = keras.Input((size, size, 3))
    feature_model = keras.Model(inputs, embedder.backbone_features(inputs, training=False))
    images_only = plain.map(lambda x, y: x["images"])
    out: dict = {"image_size": size, "batch_size": batch, "images": n}

    # where the time goes: the pipeline alone, the conversion, ONNX Runtime alone
    for name, dataset in (("plain", plain), ("augmented", augmented)):
        out[f"pipeline_only_{name}"], _ = _timed(lambda d=dataset: [b for b in d], n)
    clear_backbone_functions()
    started = time.perf_counter()
    onnx = OnnxBackbone(convert_backbone(embedder))
    out["conversion_seconds"] = time.perf_counter() - started
    held = np.asarray(next(iter(images_only)))
    onnx(held)
    out["onnx_only_in_memory"], _ = _timed(lambda: [onnx(held) for _ in range(8)], 8 * len(held))

    # warm-ups: one batch each (tracing, the conversion), then the timed passes
    feature_model.predict(images_only.take(1), verbose=0)
    backbone_function(embedder, "keras")(held)
    backbone_function(embedder, "onnx", store_dir=store)(held)
    out["keras_predict"], reference = _timed(
        lambda: feature_model.predict(images_only, verbose=0), n
    )
    runs = {}
    for runtime in ("keras", "onnx"):
        for name in ("plain", "augmented"):
            # a new pipeline each time: its first pass draws the same crops for both runtimes
            dataset, _ = _pipeline(scene, size, batch, training=name == "augmented")
            rate, (features, _) = _timed(
                lambda r=runtime, d=dataset: extract_features(
                    model, d, runtime=r, store_dir=store, verbose=0
                ),
                n,
            )
            out[f"library_{runtime}_{name}"] = rate
            runs[runtime, name] = features
    out["parity_onnx_vs_keras_predict"] = relative_difference(
        runs["onnx", "plain"], np.asarray(reference)
    )
    out["parity_onnx_vs_library_keras_augmented"] = relative_difference(
        runs["onnx", "augmented"], runs["keras", "augmented"]
    )
    reference_rate = out["keras_predict"]["images_per_s"]
    for key in ("library_keras_plain", "library_onnx_plain", "library_onnx_augmented"):
        out[key]["vs_keras_predict"] = out[key]["images_per_s"] / reference_rate
    out["speedup_vs_library_keras"] = {
        name: out[f"library_onnx_{name}"]["images_per_s"]
        / out[f"library_keras_{name}"]["images_per_s"]
        for name in ("plain", "augmented")
    }
    log(
        f"  extraction, images/s: keras.Model.predict {reference_rate:.0f}; library Keras "
        f"{out['library_keras_plain']['images_per_s']:.0f} plain / "
        f"{out['library_keras_augmented']['images_per_s']:.0f} augmented; library ONNX "
        f"Runtime {out['library_onnx_plain']['images_per_s']:.0f} / "
        f"{out['library_onnx_augmented']['images_per_s']:.0f} "
        f"({out['library_onnx_plain']['vs_keras_predict']:.1f}x keras.Model.predict); parity "
        f"{out['parity_onnx_vs_keras_predict']:.1e}; conversion "
        f"{out['conversion_seconds']:.1f} s"
    )
    return out


def latency(scene: Path, repeats: int) -> dict:
    """The ``scene`` zoo model's ``predict`` latency on raw images, Keras vs the default."""
    model = zoo.load("scene")
    size = model.image_embedder.image_size[0]
    dataset, _ = _pipeline(scene, size, 32, training=False)
    images = np.asarray(next(iter(dataset))[0]["images"])
    out = {"model": "zoo scene", "image_size": size, "repeats": repeats}
    for runtime in ("keras", "auto"):
        model.backbone_runtime = runtime
        for batch in (1, 32):
            x = images[:batch]
            for _ in range(2):
                model.predict(x, verbose=0)  # tracing / conversion
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                model.predict(x, verbose=0)
                times.append(time.perf_counter() - started)
            out[f"{runtime}_batch_{batch}_ms"] = 1000 * float(np.median(times))
    model.backbone_runtime = "keras"
    keras_scores = model.predict(images, verbose=0)
    model.backbone_runtime = "auto"
    out["parity_probabilities"] = relative_difference(
        model.predict(images, verbose=0), keras_scores
    )
    for batch in (1, 32):
        out[f"speedup_batch_{batch}"] = (
            out[f"keras_batch_{batch}_ms"] / out[f"auto_batch_{batch}_ms"]
        )
    log(
        "  predict latency, ms (Keras -> ONNX Runtime): batch 1 "
        f"{out['keras_batch_1_ms']:.0f} -> {out['auto_batch_1_ms']:.0f}, batch 32 "
        f"{out['keras_batch_32_ms']:.0f} -> {out['auto_batch_32_ms']:.0f}"
    )
    return out


def _fresh_keras_home(data_dir: Path, root: Path) -> Path:
    home = root / "keras_home"
    home.mkdir(parents=True)
    (home / "models").symlink_to(data_dir / "keras_home" / "models", target_is_directory=True)
    return home


def _cold_run(command: list[str], runtime: str, data_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="retdm-bench-cold-") as root:
        env = {
            **os.environ,
            "KERAS_HOME": str(_fresh_keras_home(data_dir, Path(root))),
            "RETDM_DATA_DIR": str(data_dir),
            "RETDM_BACKBONE_RUNTIME": runtime,
        }
        argv = [part.replace("{tmp}", root) for part in command]
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if "frozen backbone" in line]
    return {"runtime": runtime, "seconds": seconds, "extraction_lines": lines[-8:]}


def cold_runs(data_dir: Path) -> dict:
    """``make demo``'s script and ``train --recipe scene`` from empty caches, before/after."""
    cli = str(Path(sys.executable).with_name("retdm-keras"))
    commands = {
        "demo": [sys.executable, "examples/scene_demo.py", "--feature-cache", "{tmp}/features",
                 "--out", "{tmp}/demo"],
        "recipe_scene": [cli, "train", "--recipe", "scene", "--out", "{tmp}/run",
                         "--feature-cache", "{tmp}/features"],
    }  # fmt: skip
    out = {}
    for name, command in commands.items():
        before = _cold_run(command, "keras", data_dir)
        after = _cold_run(command, "auto", data_dir)
        out[name] = {
            "before": before,
            "after": after,
            "saved_seconds": before["seconds"] - after["seconds"],
            "speedup": before["seconds"] / after["seconds"],
        }
        log(
            f"  {name} from empty caches: {before['seconds']:.0f} s (Keras) -> "
            f"{after['seconds']:.0f} s (ONNX Runtime)"
        )
    return out


def run_runtime(settings, data_dir: Path) -> dict:
    started = time.time()
    scene = data_dir / "miml_scene"
    size, batch = settings.frozen_image_size, settings.batch_size
    log(f"backbone runtime: MobileNetV2 at {size} px, batch {batch}, MIML train images")
    with tempfile.TemporaryDirectory(prefix="retdm-bench-store-") as store:
        result = {"extraction": extraction(scene, size, batch, store)}
    result["latency"] = latency(scene, LATENCY_REPEATS[settings.mode])
    if settings.mode == "full":
        result["cold"] = cold_runs(data_dir)
    result["seconds"] = time.time() - started
    return result
