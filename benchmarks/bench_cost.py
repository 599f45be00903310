"""Cost section: train-step time ratios, LabelNeighbors build time and memory, inference
throughput and memory, Keras vs ONNX Runtime vs TFLite latency.

The neighbour-index and inference measurements run in child processes (this file with
``--child ...``), one per measurement, so that ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
— the peak resident set size — belongs to that measurement alone. On Linux a process started
directly from this (large) benchmark process would inherit its peak in ``ru_maxrss`` (the
high-water mark survives fork + exec), so each child is started through a tiny launcher
process; ``/proc/self/status`` ``VmHWM`` is recorded as a cross-check. The neighbour child
imports the ``retdm_keras/neighbors/`` package without running ``retdm_keras/__init__.py`` (it
needs only NumPy), so its peak RSS is not inflated by TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABELS_PER_SAMPLE = 3.0
NUM_LABELS = 80


LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- children
def _random_labels(samples: int, seed: int) -> np.ndarray:
    """``(samples, 80)`` uint8, each label on with probability 3/80 (3 labels on average)."""
    rng = np.random.default_rng(seed)
    labels = np.empty((samples, NUM_LABELS), np.uint8)
    p = LABELS_PER_SAMPLE / NUM_LABELS
    for start in range(0, samples, 100_000):
        stop = min(samples, start + 100_000)
        labels[start:stop] = rng.random((stop - start, NUM_LABELS), dtype=np.float32) < p
    return labels


def _unique_sets(labels: np.ndarray) -> int:
    packed = np.packbits(labels > 0, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    return int(len(np.unique(keys)))


def child_neighbors(samples: int, k: int, seed: int, build: bool) -> dict:
    # an empty stand-in for the top package, so that its __init__ (TensorFlow) never runs
    package = types.ModuleType("retdm_keras")
    package.__path__ = [str(REPO / "retdm_keras")]
    sys.modules["retdm_keras"] = package
    module = importlib.import_module("retdm_keras.neighbors")
    labels = _random_labels(samples, seed)
    result = {
        "samples": samples,
        "labels": NUM_LABELS,
        "mean_labels_per_sample": float(labels.sum(axis=1).mean()),
        "k": k,
        "unique_sets": _unique_sets(labels),
        "rss_before_mib": _peak_rss_mib(),
    }
    if build:
        started = time.perf_counter()
        index = module.LabelNeighbors(labels, k)
        result["build_seconds"] = time.perf_counter() - started
        result["peak_rss_mib"] = _peak_rss_mib()
        result["peak_rss_increase_mib"] = result["peak_rss_mib"] - result["rss_before_mib"]
        result["vm_hwm_mib"] = _vm_hwm_mib()
        assert index.num_sets == result["unique_sets"]
    return result


def child_inference(image_size: int, n1: int, n64: int, repeats: int) -> dict:
    import keras

    from retdm_keras import RETDM
    from retdm_keras.export import benchmark_latency, export_all

    result = {"image_size": image_size, "rss_after_import_mib": _peak_rss_mib()}
    keras.utils.set_random_seed(0)
    model = RETDM(5, backbone="mobilenet_v2", image_size=image_size, weights="imagenet")
    model.backbone_runtime = "keras"  # Keras' predict here; bench_runtime times the default
    result["rss_after_build_mib"] = _peak_rss_mib()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n64, image_size, image_size, 3)).astype("float32")
    model.predict(x[:64], batch_size=64, verbose=0)  # trace the predict function
    model.predict(x[:2], batch_size=1, verbose=0)
    throughput = {}
    for batch, count in ((1, n1), (64, n64)):
        started = time.perf_counter()
        model.predict(x[:count], batch_size=batch, verbose=0)
        seconds = time.perf_counter() - started
        throughput[str(batch)] = {
            "images": count,
            "seconds": seconds,
            "images_per_s": count / seconds,
        }
    result["predict"] = throughput
    result["peak_rss_after_predict_mib"] = _peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = export_all(model, tmp, formats=("onnx", "tflite"))
        result["export_seconds"] = time.perf_counter() - started
        result["latency"] = benchmark_latency(model, paths, batch_sizes=(1, 32), repeats=repeats)
    result["peak_rss_end_mib"] = _peak_rss_mib()
    result["vm_hwm_end_mib"] = _vm_hwm_mib()
    return result


def _run_child(args: list[str], timeout: int) -> dict:
    child = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    command = [sys.executable, "-c", LAUNCHER, *child]  # a fresh ru_maxrss, see the docstring
    started = time.time()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "seconds": time.time() - started}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- sections
def step_times(settings, data: Path) -> dict:
    """Median train-step time of BCE, RETDM (memory bank) and RETDM (exact), same batch."""
    import keras
    import tensorflow as tf

    from retdm_keras import RETDM
    from retdm_keras.data.labels import load_split, read_labels_csv
    from retdm_keras.training import begin_stage

    scene = data / "miml_scene"
    files = read_labels_csv(scene / "labels.csv")
    batch, size = settings.step_batch, settings.cost_image_size
    n = 8 * batch
    y = files.subset(load_split(scene / "split.json")["train"][:n]).labels.astype("float32")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    index = np.arange(n, dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices(({"images": images, "index": index}, y))
    dataset = dataset.batch(batch)
    batches = [
        ({"images": images[i : i + batch], "index": index[i : i + batch]}, y[i : i + batch])
        for i in range(0, n, batch)
    ]
    configs = (
        ("bce", "classifier", {"lam": 0.0, "mu": 0.0}, settings.step_repeats),
        ("bce_as_joint_lam0", "joint", {"lam": 0.0, "mu": 0.0}, settings.step_repeats),
        ("retdm_memory_bank", "joint", {"lam": 0.1, "mu": 0.1}, settings.step_repeats),
        (
            "retdm_exact",
            "joint",
            {"lam": 0.1, "mu": 0.1, "neighbor_images": "exact"},
            settings.exact_step_repeats,
        ),
    )
    out = {"image_size": size, "batch_size": batch, "num_neighbors": 10, "warmup": 3}
    results = {}
    for name, stage, kwargs, repeats in configs:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = RETDM(5, backbone="mobilenet_v2", image_size=size, weights="imagenet", **kwargs)
        begin_stage(model, stage, 1e-3, bank_data=dataset)
        times = []
        for step in range(3 + repeats):
            x, labels = batches[step % len(batches)]
            started = time.perf_counter()
            model.train_on_batch(x, labels)
            if step >= 3:
                times.append(time.perf_counter() - started)
        results[name] = {
            "stage": stage,
            **{k: v for k, v in kwargs.items()},
            "repeats": repeats,
            "median_ms": 1000 * float(np.median(times)),
            "all_ms": [1000 * t for t in times],
        }
        _log(f"  step time {name}: {results[name]['median_ms']:.0f} ms")
    base = results["bce"]["median_ms"]
    for entry in results.values():
        entry["ratio_to_bce"] = entry["median_ms"] / base
    out["configs"] = results
    return out


def neighbour_index(settings) -> dict:
    measured = []
    for samples in settings.neighbor_sizes:
        result = _run_child(
            ["neighbors", "--samples", str(samples), "--build"], settings.neighbor_timeout_s
        )
        result.setdefault("samples", samples)
        measured.append(result)
        if "error" in result:
            _log(f"  LabelNeighbors {samples:,}: {result['error'][:200]}")
        else:
            _log(
                f"  LabelNeighbors {samples:,} x 80: {result['unique_sets']:,} sets, "
                f"{result['build_seconds']:.1f} s, peak RSS +{result['peak_rss_increase_mib']:.0f} "
                "MiB"
            )
    ok = sorted(
        (m for m in measured if "error" not in m and m["unique_sets"] >= 2000),
        key=lambda m: m["samples"],
    )
    extrapolated = []
    done = {m["samples"] for m in ok}
    targets = [n for n in settings.neighbor_extrapolate_to if n not in done]
    if len(ok) >= 2 and targets:
        # Fit on the two largest measured sizes (least affected by fixed overheads; both past
        # the point where the distance block hits its max_block_elements cap).
        small, large = ok[-2], ok[-1]
        u_ratio = large["unique_sets"] / small["unique_sets"]
        slope = np.log(large["build_seconds"] / small["build_seconds"]) / np.log(u_ratio)
        mib_per_sample = (large["peak_rss_increase_mib"] - small["peak_rss_increase_mib"]) / (
            large["samples"] - small["samples"]
        )
        for samples in targets:
            count = _run_child(["neighbors", "--samples", str(samples)], 600)
            if "error" in count:
                continue
            u = count["unique_sets"]
            scale = u / large["unique_sets"]
            estimates = sorted(large["build_seconds"] * scale**e for e in (slope, 2.0))
            entry = {
                "samples": samples,
                "unique_sets": u,
                "build_seconds_low": estimates[0],
                "build_seconds_high": estimates[1],
                "peak_rss_increase_mib": large["peak_rss_increase_mib"]
                + max(0.0, mib_per_sample) * (samples - large["samples"]),
                "model": (
                    f"from the two largest measured sizes ({small['samples']:,} and "
                    f"{large['samples']:,} samples): time ~ U^{slope:.2f} as measured between "
                    "them and ~ U^2 (the blocked U x U distance matrix makes the build "
                    "quadratic in the number U of distinct label sets once fixed costs are "
                    "amortised), the range of the two; memory linear in N between the two "
                    "sizes (the distance block itself is capped by max_block_elements)"
                ),
            }
            extrapolated.append(entry)
            _log(
                f"  LabelNeighbors {samples:,}: {u:,} sets, extrapolated "
                f"~{entry['build_seconds_low']:.0f}-{entry['build_seconds_high']:.0f} s"
            )
    return {"measured": measured, "extrapolated": extrapolated, "k": 10}


def inference(settings) -> dict:
    result = _run_child(
        [
            "inference",
            "--image-size",
            str(settings.cost_image_size),
            "--n1",
            str(settings.inference_batch1_images),
            "--n64",
            str(settings.inference_batch64_images),
            "--repeats",
            str(settings.latency_repeats),
        ],
        1800,
    )
    if "error" in result:
        _log(f"  inference: {result['error'][:300]}")
    else:
        p = result["predict"]
        _log(
            f"  predict {p['1']['images_per_s']:.1f} img/s at batch 1, "
            f"{p['64']['images_per_s']:.1f} img/s at batch 64; "
            f"peak RSS {result['peak_rss_after_predict_mib']:.0f} MiB"
        )
    return result


def run_cost(settings, data: Path) -> dict:
    started = time.time()
    _log(f"Cost: {settings.cost_image_size} px, batch {settings.step_batch}")
    out = {"step_time": step_times(settings, data)}
    out["neighbors"] = neighbour_index(settings)
    out["inference"] = inference(settings)
    out["seconds"] = time.time() - started
    return out


# ----------------------------------------------------------------------------- entry
def main() -> None:
    parser = argparse.ArgumentParser(description="cost measurement child process")
    parser.add_argument("--child", choices=("neighbors", "inference"), required=True)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n1", type=int, default=64)
    parser.add_argument("--n64", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.child == "neighbors":
        result = child_neighbors(args.samples, args.k, args.seed, args.build)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        result = child_inference(args.image_size, args.n1, args.n64, args.repeats)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
