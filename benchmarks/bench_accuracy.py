"""Accuracy sections: MIML scene images (MobileNetV2) and MULAN scene features ("mlp").

Methods, all on the same training rows, validation rows (for every choice) and test rows:

* ``linear_probe``  — frozen features, per-label logistic regression (L2 chosen on val);
* ``bce``           — fine-tuned, the shared stage-1 checkpoint then ``e3`` more BCE epochs at
  the stage-3 learning rate: for the image side and the classifier this is the 3-stage
  schedule with ``lam = mu = 0`` (stage 2 then trains only the label branch, which prediction
  does not use), as ``examples/scene_demo.py`` defines BCE;
* ``retdm_one_way`` — RETDM with ``alpha = 0`` (chosen ``lam``, ``mu``);
* ``retdm``         — RETDM, ``lam``/``mu`` chosen on val (MIML: the grid; MULAN: the recipe);
* ``retdm_no_rec``  — RETDM with ``mu = 0`` (chosen ``lam``);
* ``c2ae``          — ``retdm_keras.baselines.C2AE`` on frozen features (alpha chosen on val);
* ``mlknn``         — ``retdm_keras.baselines.MLkNN`` (k = 10, s = 1) on frozen features;
* ``br_lr``         — scikit-learn's binary-relevance logistic regression on standardised
  frozen features, C chosen by k-fold cross-validation on the training rows (the classical
  baseline issue #13 names; deterministic, so one fit serves every seed).

Every fine-tuned method of a seed starts from the same stage-1 (classifier) weights of that
seed, which is exactly what their schedules share; each later fit gets a freshly seeded
training pipeline, so all variants of a seed see the same batches and crops.

This module holds the two dataset runners (``run_miml``, ``run_mulan``); the fine-tuned runs
are in ``bench_accuracy_staged``, the feature baselines in ``bench_accuracy_baselines`` and the
scoring and selection in ``bench_accuracy_scores``, re-exported here.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
from bench_accuracy_baselines import binary_relevance_lr, deterministic_entry, feature_baselines
from bench_accuracy_scores import METHODS, SELECT_BY, score, selection_score, summarise
from bench_accuracy_staged import (
    StagedRuns,
    choose_lam_mu,
    convergence_history,
    fine_tuned_methods,
)
from bench_common import MULAN_RECIPE, log

from retdm_keras import RETDM
from retdm_keras.recipes import make_optimizer

__all__ = [
    "METHODS",
    "SELECT_BY",
    "StagedRuns",
    "binary_relevance_lr",
    "choose_lam_mu",
    "convergence_history",
    "deterministic_entry",
    "feature_baselines",
    "fine_tuned_methods",
    "run_miml",
    "run_mulan",
    "score",
    "selection_score",
    "summarise",
]


# ----------------------------------------------------------------------------- MIML
def run_miml(settings, seeds, data: Path) -> dict:
    from retdm_keras.data import image_dataset
    from retdm_keras.data.labels import load_split, read_labels_csv
    from retdm_keras.embedders import ImageEmbedder

    started = time.time()
    scene = data / "miml_scene"
    files = read_labels_csv(scene / "labels.csv")
    split = load_split(scene / "split.json")
    train_names = list(split["train"])
    if settings.train_limit:  # a seeded random subset: the split file is ordered by label
        keep = np.random.default_rng(0).permutation(len(train_names))[: settings.train_limit]
        train_names = [train_names[i] for i in sorted(keep)]
    train_files = files.subset(train_names)
    val_files, test_files = files.subset(split["val"]), files.subset(split["test"])
    names = list(files.label_names)
    images = scene / "images"
    size, batch = settings.image_size, settings.batch_size
    log(
        f"MIML scene: {len(train_files)} train / {len(val_files)} val / {len(test_files)} test, "
        f"{size} px, epochs {settings.epochs}, seeds {list(seeds)}"
    )

    def eval_data(part):
        return image_dataset(images, part, image_size=size, batch_size=batch, cache=True)

    bank_ds, val_ds, test_ds = eval_data(train_files), eval_data(val_files), eval_data(test_files)

    def train_data(seed: int):
        return image_dataset(
            images,
            train_files,
            image_size=size,
            batch_size=batch,
            training=True,
            cache=True,
            seed=seed,
        )

    # --- frozen ImageNet features (resize only, no augmentation) for the feature baselines
    t0 = time.time()
    embedder = ImageEmbedder("mobilenet_v2", image_size=size, weights="imagenet")
    extractor = keras.Sequential(
        [keras.layers.Rescaling(1 / 127.5, offset=-1.0), embedder.backbone], name="frozen"
    )

    def features(ds):
        return extractor.predict(ds.map(lambda x, y: x["images"]), verbose=0)

    x_train, x_val, x_test = features(bank_ds), features(val_ds), features(test_ds)
    feature_seconds = time.time() - t0
    log(f"  frozen features {x_train.shape[1]}-d: {feature_seconds:.0f} s")
    keras.backend.clear_session()
    y_train, y_val, y_test = train_files.labels, val_files.labels, test_files.labels
    methods = feature_baselines(settings, seeds, x_train, y_train, x_val, y_val, x_test, y_test)

    def build(lam, mu, alpha, pretrained):
        keras.backend.clear_session()
        return RETDM(
            len(names),
            backbone="mobilenet_v2",
            image_size=size,
            weights="imagenet" if pretrained else None,
            freeze_batchnorm=True,
            lam=lam,
            mu=mu,
            alpha=alpha,
            label_names=names,
        )

    runs = StagedRuns(
        build,
        train_data,
        bank_ds,
        val_ds,
        test_ds,
        y_val,
        y_test,
        settings.epochs,
        settings.learning_rates,
    )
    first = seeds[0]
    log(f"  lam x mu grid on val: lam {settings.grid_lams}, mu {settings.grid_mus}")
    grid, (lam, mu) = choose_lam_mu(runs, first, settings.grid_lams, settings.grid_mus)
    log(f"  chosen on val: lam={lam}, mu={mu}")
    methods.update(fine_tuned_methods(runs, seeds, lam, mu))
    convergence = convergence_history(runs, first, lam, mu)
    return {
        "dataset": "MIML scene images (Zhang & Zhou), canonical split",
        "sizes": {"train": len(train_files), "val": len(val_files), "test": len(test_files)},
        "label_names": names,
        "backbone": "mobilenet_v2 (alpha 1.0), ImageNet weights, BatchNorm statistics frozen",
        "image_size": size,
        "epochs": settings.epochs,
        "learning_rates": settings.learning_rates,
        "batch_size": batch,
        "seeds": list(seeds),
        "chosen": {"lam": lam, "mu": mu},
        "grid": grid,
        "feature_seconds": feature_seconds,
        "methods": summarise(methods),
        "convergence": convergence,
        "seconds": time.time() - started,
    }


# ----------------------------------------------------------------------------- MULAN
def run_mulan(settings, seeds, data: Path) -> dict:
    from retdm_keras.data import feature_dataset, load_arff

    started = time.time()
    folder = data / "mulan" / "scene"
    xml = folder / "scene.xml"
    train_all = load_arff(folder / "scene-train.arff", labels_xml=xml)
    test = load_arff(folder / "scene-test.arff", labels_xml=xml)
    n = len(train_all)
    n_val = int(round(settings.mulan_val_fraction * n))
    order = np.random.default_rng(0).permutation(n)  # a fixed split for every seed
    train_rows, val_rows = np.sort(order[n_val:]), np.sort(order[:n_val])
    x_train, y_train = train_all.features[train_rows], train_all.labels[train_rows]
    x_val, y_val = train_all.features[val_rows], train_all.labels[val_rows]
    x_test, y_test = test.features, test.labels
    log(
        f"MULAN scene: {len(x_train)} train / {len(x_val)} val (10% of scene-train, seed 0) / "
        f"{len(x_test)} test, epochs {settings.mulan_epochs}, seeds {list(seeds)}"
    )
    methods = feature_baselines(settings, seeds, x_train, y_train, x_val, y_val, x_test, y_test)

    def build(lam, mu, alpha, pretrained):
        keras.backend.clear_session()
        return RETDM(
            train_all.num_labels,
            backbone="mlp",
            input_dim=train_all.num_features,
            embed_dim=512,
            lam=lam,
            mu=mu,
            alpha=alpha,
            linear_skip=settings.mulan_linear_skip,
            label_names=train_all.label_names,
        )

    def data_of(x, y, **kwargs):
        return feature_dataset(x, y, batch_size=settings.batch_size, **kwargs)

    runs = StagedRuns(
        build,
        lambda seed: data_of(x_train, y_train, training=True, seed=seed),
        data_of(x_train, y_train),
        data_of(x_val, y_val),
        data_of(x_test, y_test),
        y_val,
        y_test,
        settings.mulan_epochs,
        settings.mulan_learning_rates,
        # the recipe's optimiser (SGD), not the feature-vector default (Adam)
        optimizer=make_optimizer(MULAN_RECIPE.training, "mlp"),
    )
    lam, mu = settings.mulan_lam, settings.mulan_mu
    methods.update(fine_tuned_methods(runs, seeds, lam, mu))
    first = seeds[0]
    convergence = convergence_history(runs, first, lam, mu)
    return {
        "dataset": "MULAN scene features (Boutell et al. 2004), scene-train / scene-test",
        "sizes": {"train": len(x_train), "val": len(x_val), "test": len(x_test)},
        "label_names": train_all.label_names,
        "backbone": f"mlp on {train_all.num_features} features (hidden 512), embed_dim 512",
        "epochs": settings.mulan_epochs,
        "learning_rates": settings.mulan_learning_rates,
        "batch_size": settings.batch_size,
        "seeds": list(seeds),
        "chosen": {"lam": lam, "mu": mu, "source": "recipes/scene-features.yaml (val-chosen)"},
        "methods": summarise(methods),
        "convergence": convergence,
        "seconds": time.time() - started,
    }
