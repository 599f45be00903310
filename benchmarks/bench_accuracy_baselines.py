"""The feature baselines on frozen features: linear probe and C2AE (setting chosen on val),
ML-kNN, and scikit-learn's binary-relevance logistic regression (C chosen by k-fold CV)."""

from __future__ import annotations

import time

import keras
import numpy as np
from bench_accuracy_scores import score, selection_score
from bench_common import log

from retdm_keras.baselines import MLkNN, fit_c2ae, fit_linear_probe
from retdm_keras.metrics import evaluate


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
        chosen = max(selection, key=lambda s: selection_score(s["val"]))[param]
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
    chosen = max(selection, key=lambda s: selection_score(s["cv"]))["C"]
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
