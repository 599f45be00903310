"""The ``frozen`` section: frozen-backbone training on MIML scene images (issue #14).

Three measurements, all with MobileNetV2 (ImageNet) at ``settings.frozen_image_size`` px:

1. **End to end, cold cache.** One RETDM with the library defaults (λ = μ = 1, the
   learning rates of ``fit_stages``; the full run also uses its 10 + 5 + 10 epochs)
   trained by ``fit_stages(..., freeze_backbone=True, feature_views=V)`` on the 1,400
   training images with an empty feature cache: the wall time from the raw images to a
   trained model, split into feature extraction and training.
2. **Accuracy.** Linear probe, BCE, RETDM and its two ablations (one-way, α = 0, and no
   reconstruction, μ = 0) on the same cached features, mean ± std over the seeds, on the 400
   test images. Per seed, one classifier stage is trained and its weights copied into BCE
   and the three RETDM variants (the same computation for all); BCE then trains the joint
   stage with λ = μ = 0, the RETDM variants stages 2 and 3, whose per-epoch histories (the
   metric loss for the convergence plot) are kept with the loss's chance level; the probe's
   L2 is chosen on the validation split.
3. **Cost.** Feature-extraction throughput (images/s through the backbone, augmentation and
   decoding included) and the median joint-stage train step in frozen mode (pooled features
   in) against fine-tuning (images in), same backbone, image size and batch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from bench_common import aggregate, history_lists, log

from retdm_keras import RETDM, fit_stages
from retdm_keras.baselines import fit_linear_probe
from retdm_keras.data import from_folder
from retdm_keras.frozen_features import FeatureCache, cached_features, prepare_frozen_data
from retdm_keras.losses import two_way_metric_loss
from retdm_keras.metrics import evaluate
from retdm_keras.training import begin_stage


def _splits(scene: Path, size: int, batch: int) -> dict:
    def split(name: str, training: bool):
        return from_folder(
            scene / "images",
            scene / "labels.csv",
            split=name,
            split_json=scene / "split.json",
            image_size=size,
            batch_size=batch,
            training=training,
            cache=True,
            seed=0,
        )

    train, train_files = split("train", True)
    bank, _ = split("train", False)
    val, val_files = split("val", False)
    test, test_files = split("test", False)
    return {
        "train": train,
        "bank": bank,
        "val": val,
        "test": test,
        "files": {"train": train_files, "val": val_files, "test": test_files},
    }


def _build(names: list[str], size: int, seed: int, **kwargs) -> RETDM:
    keras.utils.set_random_seed(seed)
    return RETDM(
        len(names),
        backbone="mobilenet_v2",
        weights="imagenet",
        image_size=size,
        label_names=names,
        **kwargs,
    )


def end_to_end(settings, data: dict, names: list[str], seed: int, cache: str) -> dict:
    """Wall time of one frozen-mode RETDM from an empty ``cache`` folder, extraction and
    training apart (the features stay in ``cache`` for the sections after it)."""
    size, views = settings.frozen_image_size, settings.frozen_views
    n_train = len(data["files"]["train"])
    if any(Path(cache).iterdir()):
        raise ValueError(f"{cache} is not empty: the end-to-end run must start cold")
    started = time.perf_counter()
    model = _build(names, size, seed)
    built = time.perf_counter()
    frozen = prepare_frozen_data(
        model, data["train"], data["val"], data["bank"], views=views, cache_dir=cache,
        verbose=0,
    )  # fmt: skip
    extracted = time.perf_counter()
    keras.utils.set_random_seed(seed)
    histories = fit_stages(
        model, data["train"], data["val"], epochs=settings.frozen_epochs,
        bank_data=data["bank"], freeze_backbone=True, feature_views=views,
        feature_cache=cache, verbose=0, baseline=False,
    )  # fmt: skip
    trained = time.perf_counter()
    # the plain view (memory bank) once, the augmented passes, the validation set
    images = n_train * (1 + frozen.augmented_views) + len(data["files"]["val"])
    scores = model.predict(data["test"], verbose=0)
    result = {
        "seed": seed,
        "views": views,
        "augmented_views": frozen.augmented_views,
        "images_through_backbone": images,
        "build_seconds": built - started,
        "extraction_seconds": extracted - built,
        "extraction_images_per_s": images / (extracted - built),
        "training_seconds": trained - extracted,
        "total_seconds": trained - started,
        "epochs": [len(h.history.get("loss", [])) for h in histories.values()],
        "history": history_lists(histories),
        "test": evaluate(data["files"]["test"].labels, scores),
    }
    log(
        f"  end to end (cold cache): {result['total_seconds']:.0f} s = build "
        f"{result['build_seconds']:.0f} + extraction {result['extraction_seconds']:.0f} "
        f"({result['extraction_images_per_s']:.0f} images/s) + training "
        f"{result['training_seconds']:.0f}; test AP {result['test']['average_precision']:.4f}"
    )
    return result


# the RETDM family: (lam, mu, alpha) overrides of the library defaults, trained from the
# shared stage-1 weights of each seed with fit_stages' stages 2 and 3 (bench_accuracy's names)
VARIANTS = {
    "retdm_one_way": {"alpha": 0.0},
    "retdm": {},
    "retdm_no_rec": {"mu": 0.0},
}
METHODS = ("linear_probe", "bce", "retdm_one_way", "retdm", "retdm_no_rec")


def metric_loss_chance(model: RETDM) -> dict:
    """``L_metric`` at chance: every distance equal, as ``model`` computes the loss.

    The library's own ``two_way_metric_loss`` on all-zero embeddings (so ``d0 = dk = d'k``),
    with ``model``'s margin (in its distance units), alpha, distance and hinge reduction and
    each training sample's real-neighbour mask from the attached training set. Per way and
    sample that is ``log(1 + n_i)`` (the softmax term over ``n_i + 1`` equal logits) plus the
    margin (each hinge is ``max(0, margin + d - d)``, averaged over the ``n_i`` real
    neighbours), so ``(1 + alpha) * (log(1 + K) + margin)`` when every sample has ``K``
    neighbours; the mean over the training samples is returned.
    """
    ts = model.training_set
    mask = tf.gather(ts.neighbor_mask, ts.set_index).numpy().astype("float32")
    n, k = mask.shape
    zeros = np.zeros((n, 1), "float32")  # any width: only the (equal) distances matter
    loss = two_way_metric_loss(
        zeros, zeros, np.zeros((n, k, 1), "float32"), np.zeros((n, k, 1), "float32"), mask,
        margin=model.metric_margin, alpha=model.alpha, distance=model.distance,
        hinge_reduction=model.hinge_reduction,
    )  # fmt: skip
    return {
        "value": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "mean_neighbours": float(mask.sum(axis=1).mean()),
    }


def accuracy(settings, data: dict, names: list[str], seeds, cache: str) -> dict:
    """Linear probe, BCE, RETDM and its one-way / no-reconstruction ablations on the cached
    features, per seed; the RETDM family's stage-2/3 histories and chance metric loss."""
    size, views = settings.frozen_image_size, settings.frozen_views
    files = data["files"]
    extractor = _build(names, size, 0)
    frozen = prepare_frozen_data(
        extractor, data["train"], data["val"], data["bank"], views=views, cache_dir=cache,
        verbose=0,
    )  # fmt: skip
    test_features, _ = cached_features(
        extractor, data["test"], cache=FeatureCache(cache), verbose=0
    )
    plain = {"train": frozen.bank_features, "val": frozen.val_features, "test": test_features}
    y = {part: files[part].labels for part in ("train", "val", "test")}

    def probe(l2: float, seed: int):
        return fit_linear_probe(plain["train"], y["train"], l2=l2, seed=seed)

    probe_l2 = max(
        settings.probe_l2,
        key=lambda l2: evaluate(y["val"], probe(l2, seeds[0]).predict(plain["val"], verbose=0))[
            "average_precision"
        ],
    )
    epochs = settings.frozen_epochs

    def fit(model, schedule, seed):
        keras.utils.set_random_seed(seed)
        return fit_stages(
            model, data["train"], data["val"], epochs=schedule, bank_data=data["bank"],
            freeze_backbone=True, feature_views=views, feature_cache=cache, verbose=0,
            baseline=False,  # the method's own scores (bench_defaults measures the mix)
        )  # fmt: skip

    def test_scores(model):
        return model.predict({"backbone_features": plain["test"]}, verbose=0)

    runs: dict[str, list[dict]] = {name: [] for name in METHODS}
    histories: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    chance: dict[str, dict] = {}
    seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    for seed in seeds:
        t0 = time.perf_counter()
        runs["linear_probe"].append(
            evaluate(y["test"], probe(probe_l2, seed).predict(plain["test"], verbose=0))
        )
        seconds["linear_probe"].append(time.perf_counter() - t0)
        # the classifier stage, shared by every other method of this seed: its weights are
        # copied before RETDM trains on (all variants have the same layers; alpha, mu and
        # lam only change the loss, so set_weights matches them one to one)
        t1 = time.perf_counter()
        first = _build(names, size, seed)
        fit(first, (epochs[0], 0, 0), seed)
        stage1 = first.get_weights()
        reference = test_scores(first)
        shared = time.perf_counter() - t1
        models = {"bce": _build(names, size, seed, lam=0.0, mu=0.0)}
        models.update({name: _build(names, size, seed, **kw) for name, kw in VARIANTS.items()})
        for name, model in models.items():
            model.set_weights(stage1)
            gap = float(np.max(np.abs(test_scores(model) - reference)))
            if gap > 1e-6:
                raise RuntimeError(f"{name}: the stage-1 copy predicts differently ({gap:g})")
        del first
        for name in ("bce", *VARIANTS):
            t1 = time.perf_counter()
            model = models[name]
            if name == "bce":  # the joint stage with lam = mu = 0
                fit(model, (0, 0, epochs[2]), seed)
            else:
                histories[name].append(history_lists(fit(model, (0, epochs[1], epochs[2]), seed)))
                chance.setdefault(name, metric_loss_chance(model))
            runs[name].append(evaluate(y["test"], test_scores(model)))
            seconds[name].append(shared + time.perf_counter() - t1)
        log(
            f"  seed {seed}: probe / BCE / one-way / RETDM / no-rec test AP "
            + " / ".join(f"{runs[m][-1]['average_precision']:.4f}" for m in METHODS)
            + f" ({time.perf_counter() - t0:.0f} s)"
        )
        params = {n: {"lam": m.lam, "mu": m.mu, "alpha": m.alpha} for n, m in models.items()}
        del models, model
    methods = {}
    for name in METHODS:
        entry = {"test": aggregate(runs[name]), "runs": runs[name], "seconds": seconds[name]}
        if name in params:
            entry["params"] = params[name]
        if name in histories:
            entry["history"] = [
                {"seed": seed, "stages": h} for seed, h in zip(seeds, histories[name], strict=True)
            ]
            entry["metric_loss_chance"] = chance[name]
        methods[name] = entry
    return {"probe_l2": probe_l2, "methods": methods}


def step_times(settings, data: dict, names: list[str], cache: str) -> dict:
    """Median joint-stage train step: frozen (features in) vs fine-tuning (images in)."""
    size, batch = settings.frozen_image_size, settings.batch_size
    frozen_model = _build(names, size, 0)
    frozen = prepare_frozen_data(
        frozen_model, data["train"], data["val"], data["bank"], views=settings.frozen_views,
        cache_dir=cache, verbose=0,
    )  # fmt: skip
    frozen_batches = list(frozen.train.take(settings.frozen_step_repeats + 3))
    image_batches = list(data["train"].take(settings.finetune_step_repeats + 3))
    out = {"image_size": size, "batch_size": batch, "stage": "joint", "warmup": 3}
    for name, model, batches, bank in (
        ("frozen", frozen_model, frozen_batches, frozen.bank),
        ("fine_tuning", _build(names, size, 0), image_batches, data["bank"]),
    ):
        model.freeze_backbone = name == "frozen"
        begin_stage(model, "joint", 1e-3, bank_data=bank)
        times = []
        for step, (x, y) in enumerate(batches):
            started = time.perf_counter()
            model.train_on_batch(x, y)
            if step >= 3:
                times.append(time.perf_counter() - started)
        out[name] = {"repeats": len(times), "median_ms": 1000 * float(np.median(times))}
        out[name]["steps_per_s"] = 1000 / out[name]["median_ms"]
        log(f"  {name} train step: {out[name]['median_ms']:.1f} ms")
    out["speedup"] = out["fine_tuning"]["median_ms"] / out["frozen"]["median_ms"]
    return out


def run_frozen(settings, seeds, data_dir: Path) -> dict:
    started = time.time()
    scene = data_dir / "miml_scene"
    size, views = settings.frozen_image_size, settings.frozen_views
    data = _splits(scene, size, settings.batch_size)
    names = list(data["files"]["train"].label_names)
    log(
        f"frozen MobileNetV2 at {size} px, {views} views: "
        f"{len(data['files']['train'])} train / {len(data['files']['val'])} val / "
        f"{len(data['files']['test'])} test images, seeds {list(seeds)}"
    )
    with tempfile.TemporaryDirectory(prefix="retdm-bench-features-") as cache:
        cold = end_to_end(settings, data, names, seeds[0], cache)
        result = accuracy(settings, data, names, seeds, cache)
        steps = step_times(settings, data, names, cache)
    return {
        "dataset": "MIML scene images (Zhang & Zhou), canonical split",
        "sizes": {part: len(f) for part, f in data["files"].items()},
        "backbone": "mobilenet_v2 (alpha 1.0), ImageNet weights, frozen",
        "image_size": size,
        "views": views,
        "epochs": settings.frozen_epochs,
        "seeds": list(seeds),
        "end_to_end": cold,
        **result,
        "step_time": steps,
        "seconds": time.time() - started,
    }
