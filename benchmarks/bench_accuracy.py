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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from bench_common import aggregate, history_lists, log

from retdm_keras import RETDM, fit_stages
from retdm_keras.baselines import MLkNN, fit_c2ae, fit_linear_probe
from retdm_keras.metrics import evaluate
from retdm_keras.thresholds import calibrate

METHODS = (
    "linear_probe",
    "bce",
    "retdm_one_way",
    "retdm",
    "retdm_no_rec",
    "c2ae",
    "mlknn",
    "br_lr",
)
SELECT_BY = ("average_precision", "mAP")  # validation criterion, then tie-break


def _convergence(runs, seed: int, lam: float, mu: float) -> dict:
    """Loss terms per epoch of one RETDM run across its three stages (for the plot)."""
    history = {**runs.stage1(seed)["history"], **runs.retdm(seed, lam, mu, 1.0)["history"]}
    return {"seed": seed, "lam": lam, "mu": mu, "stages": history}


def _score(metrics: dict) -> tuple[float, ...]:
    return tuple(metrics[k] for k in SELECT_BY)


def score(y_val, p_val, y_test, p_test) -> dict:
    """Val and test metrics at 0.5, and test metrics at per-class thresholds chosen on val.

    ``test_calibrated`` is what ``retdm-keras calibrate --method per_class_f1`` gives a user:
    each label's F1-best threshold on the validation split, applied to the test split.
    """
    thresholds = calibrate(y_val, p_val, "per_class_f1")
    return {
        "val": evaluate(y_val, p_val),
        "test": evaluate(y_test, p_test),
        "test_calibrated": evaluate(y_test, p_test, threshold=list(thresholds.values)),
    }


# ----------------------------------------------------------------------------- fine-tuning
class StagedRuns:
    """Stage-1 checkpoints per seed and the runs that continue from them (cached)."""

    def __init__(
        self,
        build: Callable[[float, float, float, bool], RETDM],
        train_data: Callable[[int], object],
        bank_data,
        val_data,
        test_data,
        y_val: np.ndarray,
        y_test: np.ndarray,
        epochs: tuple[int, int, int],
        learning_rates: tuple[float, float, float],
    ):
        self.build = build
        self.train_data = train_data
        self.bank_data = bank_data
        self.val_data = val_data
        self.test_data = test_data
        self.y_val = y_val
        self.y_test = y_test
        self.epochs = tuple(epochs)
        self.learning_rates = tuple(learning_rates)
        self._stage1: dict[int, dict] = {}
        self._runs: dict[tuple, dict] = {}

    def stage1(self, seed: int) -> dict:
        if seed not in self._stage1:
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = self.build(0.0, 0.0, 1.0, True)
            keras.utils.set_random_seed(seed)
            histories = fit_stages(
                model,
                self.train_data(seed),
                self.val_data,
                epochs=(self.epochs[0], 0, 0),
                learning_rates=self.learning_rates,
                bank_data=self.bank_data,
                verbose=0,
            )
            self._stage1[seed] = {
                "weights": model.get_weights(),
                "history": history_lists(histories),
                "seconds": time.time() - started,
            }
            log(f"  stage 1, seed {seed}: {self._stage1[seed]['seconds']:.0f} s")
        return self._stage1[seed]

    def _finish(self, model: RETDM, started: float, histories) -> dict:
        p_val = model.predict(self.val_data, verbose=0)
        p_test = model.predict(self.test_data, verbose=0)
        return {
            **score(self.y_val, p_val, self.y_test, p_test),
            "history": history_lists(histories),
            "seconds": time.time() - started,
        }

    def bce(self, seed: int) -> dict:
        key = ("bce", seed)
        if key not in self._runs:
            start = self.stage1(seed)
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = self.build(0.0, 0.0, 1.0, False)
            model.set_weights(start["weights"])
            keras.utils.set_random_seed(seed)
            lr1, lr2, lr3 = self.learning_rates
            histories = fit_stages(
                model,
                self.train_data(seed),
                self.val_data,
                epochs=(self.epochs[2], 0, 0),  # stage-3 epochs, BCE only, stage-3 lr
                learning_rates=(lr3, lr2, lr3),
                bank_data=self.bank_data,
                verbose=0,
            )
            self._runs[key] = self._finish(model, started, histories)
            self._log("bce", seed, self._runs[key])
        return self._runs[key]

    def retdm(self, seed: int, lam: float, mu: float, alpha: float) -> dict:
        key = ("retdm", seed, float(lam), float(mu), float(alpha))
        if key not in self._runs:
            start = self.stage1(seed)
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = self.build(lam, mu, alpha, False)
            model.set_weights(start["weights"])
            keras.utils.set_random_seed(seed)
            histories = fit_stages(
                model,
                self.train_data(seed),
                self.val_data,
                epochs=(0, self.epochs[1], self.epochs[2]),
                learning_rates=self.learning_rates,
                bank_data=self.bank_data,
                verbose=0,
            )
            self._runs[key] = self._finish(model, started, histories)
            self._log(f"retdm lam={lam} mu={mu} alpha={alpha}", seed, self._runs[key])
        return self._runs[key]

    @staticmethod
    def _log(name: str, seed: int, run: dict) -> None:
        log(
            f"  {name}, seed {seed}: {run['seconds']:.0f} s, val AP "
            f"{run['val']['average_precision']:.4f}, test AP {run['test']['average_precision']:.4f}"
        )


def choose_lam_mu(runs: StagedRuns, seed: int, lams, mus) -> tuple[dict, tuple[float, float]]:
    """Run the lam x mu grid on val (seed ``seed``); pick the best with mu > 0."""
    grid = []
    for lam in lams:
        for mu in mus:
            run = runs.retdm(seed, lam, mu, 1.0)
            grid.append({"lam": lam, "mu": mu, "val": run["val"]})
    candidates = [g for g in grid if g["mu"] > 0] or grid
    best = max(candidates, key=lambda g: _score(g["val"]))
    return {"seed": seed, "criterion": list(SELECT_BY), "points": grid}, (best["lam"], best["mu"])


def fine_tuned_methods(runs: StagedRuns, seeds, lam: float, mu: float) -> dict[str, dict]:
    """bce, retdm_one_way, retdm, retdm_no_rec over the seeds."""
    plan = {
        "bce": lambda s: runs.bce(s),
        "retdm": lambda s: runs.retdm(s, lam, mu, 1.0),
        "retdm_one_way": lambda s: runs.retdm(s, lam, mu, 0.0),
        "retdm_no_rec": lambda s: runs.retdm(s, lam, 0.0, 1.0),
    }
    collected: dict[str, dict] = {
        name: {"runs": [], "runs_calibrated": [], "val": [], "seconds": []} for name in plan
    }
    for seed in seeds:
        for name, run_of in plan.items():
            run = run_of(seed)
            collected[name]["runs"].append(run["test"])
            collected[name]["runs_calibrated"].append(run["test_calibrated"])
            collected[name]["val"].append(run["val"])
            collected[name]["seconds"].append(run["seconds"] + runs.stage1(seed)["seconds"])
    params = {
        "bce": {"lam": 0.0, "mu": 0.0},
        "retdm": {"lam": lam, "mu": mu, "alpha": 1.0},
        "retdm_one_way": {"lam": lam, "mu": mu, "alpha": 0.0},
        "retdm_no_rec": {"lam": lam, "mu": 0.0, "alpha": 1.0},
    }
    for name, entry in collected.items():
        entry["params"] = params[name]
    return collected


# ----------------------------------------------------------------------------- baselines
def feature_baselines(settings, seeds, x_train, y_train, x_val, y_val, x_test, y_test) -> dict:
    """linear_probe, c2ae (one setting chosen on val with the first seed), mlknn."""
    out = {}
    first = seeds[0]

    def fit_probe(l2, seed):
        model = fit_linear_probe(x_train, y_train, l2=l2, epochs=settings.probe_epochs, seed=seed)
        return model

    def fit_c2(alpha, seed):
        return fit_c2ae(x_train, y_train, alpha=alpha, epochs=settings.c2ae_epochs, seed=seed)[0]

    for name, values, fit, param in (
        ("linear_probe", settings.probe_l2, fit_probe, "l2"),
        ("c2ae", settings.c2ae_alphas, fit_c2, "alpha"),
    ):
        started = time.time()
        selection, models = [], {}
        for value in values:
            model = fit(value, first)
            val = evaluate(y_val, model.predict(x_val, verbose=0))
            selection.append({param: value, "val": val})
            models[value] = model
        chosen = max(selection, key=lambda s: _score(s["val"]))[param]
        entry = {"runs": [], "runs_calibrated": [], "val": [], "seconds": []}
        entry.update(params={param: chosen}, selection=selection)
        for seed in seeds:
            t0 = time.time()
            model = models[chosen] if seed == first else fit(chosen, seed)
            scores = score(
                y_val, model.predict(x_val, verbose=0), y_test, model.predict(x_test, verbose=0)
            )
            entry["runs"].append(scores["test"])
            entry["runs_calibrated"].append(scores["test_calibrated"])
            entry["val"].append(scores["val"])
            entry["seconds"].append(time.time() - t0)
        keras.backend.clear_session()
        log(f"  {name}: {param}={chosen} chosen on val; {time.time() - started:.0f} s")
        out[name] = entry

    started = time.time()
    knn = MLkNN(k=settings.mlknn_k, s=settings.mlknn_s).fit(x_train, y_train)
    scores = score(y_val, knn.predict_proba(x_val), y_test, knn.predict_proba(x_test))
    seconds = time.time() - started
    params = {"k": settings.mlknn_k, "s": settings.mlknn_s}
    out["mlknn"] = deterministic_entry(scores, seconds, len(seeds), params)
    log(f"  mlknn: {seconds:.1f} s")
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    out["br_lr"] = binary_relevance_lr(settings, seeds, *splits)
    return out


def _standardised_br_lr(c: float):
    """One-vs-rest ``LogisticRegression(C)`` on features standardised with training stats
    (a scikit-learn pipeline: ``fit`` returns it, ``predict_proba`` scores)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), OneVsRestClassifier(LogisticRegression(C=c, max_iter=5000))
    )


def binary_relevance_lr(settings, seeds, x_train, y_train, x_val, y_val, x_test, y_test) -> dict:
    """``br_lr``: C chosen by ``settings.br_lr_folds``-fold CV on the training rows (mean
    validation-fold average precision, tie-break mAP), then refit on all of them."""
    from sklearn.model_selection import KFold

    started = time.time()
    folds = list(KFold(settings.br_lr_folds, shuffle=True, random_state=0).split(x_train))
    selection = []
    for c in settings.br_lr_cs:
        per_fold = [
            evaluate(y_train[held], _standardised_br_lr(c).fit(x_train[fit], y_train[fit])
                     .predict_proba(x_train[held]))
            for fit, held in folds
        ]  # fmt: skip
        mean = {k: float(np.mean([f[k] for f in per_fold])) for k in per_fold[0]}
        selection.append({"C": c, "cv": mean})
    chosen = max(selection, key=lambda s: _score(s["cv"]))["C"]
    model = _standardised_br_lr(chosen).fit(x_train, y_train)
    scores = score(y_val, model.predict_proba(x_val), y_test, model.predict_proba(x_test))
    seconds = time.time() - started
    log(f"  br_lr: C={chosen} chosen by {settings.br_lr_folds}-fold CV; {seconds:.1f} s")
    params = {"C": chosen, "folds": settings.br_lr_folds}
    return {**deterministic_entry(scores, seconds, len(seeds), params), "selection": selection}


def deterministic_entry(scores: dict, seconds: float, num_seeds: int, params: dict) -> dict:
    """A method entry for a deterministic baseline: one fit's scores stand for every seed."""
    return {
        "runs": [scores["test"]] * num_seeds,
        "runs_calibrated": [scores["test_calibrated"]] * num_seeds,
        "val": [scores["val"]] * num_seeds,
        "seconds": [seconds] * num_seeds,
        "params": params,
        "deterministic": True,
    }


def summarise(methods: dict[str, dict]) -> dict[str, dict]:
    for entry in methods.values():
        entry["test"] = aggregate(entry["runs"])
        entry["test_calibrated"] = aggregate(entry["runs_calibrated"])
        entry["val_mean"] = aggregate(entry["val"])
    return {name: methods[name] for name in METHODS if name in methods}


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
    convergence = _convergence(runs, first, lam, mu)
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
    )
    lam, mu = settings.mulan_lam, settings.mulan_mu
    methods.update(fine_tuned_methods(runs, seeds, lam, mu))
    first = seeds[0]
    convergence = _convergence(runs, first, lam, mu)
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
