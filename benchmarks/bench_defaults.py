"""``defaults``: what a user gets from ``retdm-keras train`` with default options, against the
tuned baseline, on every real data set we have.

For each set and seed the CLI is run as a user runs it (a subprocess, default options but
``--seed``): images from a folder + CSV + split file (MIML scene, UC Merced), MULAN ARFF
train/test files (scene, enron, bibtex, corel5k, tmc2007-500). Recorded per run:

* ``retdm``: the test metrics the command printed (``metrics.json``): RETDM with the tuned
  baseline mixed in at the share chosen on validation data (``train_config.json``'s
  ``baseline_choice``: the share, ``C`` and the validation scores);
* ``retdm_alone``: the same saved model with the baseline share set to 0, scored on the test
  split (what RETDM alone would have scored: the effect of the mix);
* ``bce``: ``--lam 0 --mu 0 --no-baseline``, the plain classifier on all training rows.

And once per set (deterministic): ``br_lr``, :class:`~retdm_keras.baselines.BinaryRelevanceLR`
as the issues' anchor is built (C chosen on validation rows by average precision, refit on
all of them, solver tolerance 1e-6: the image sets' val split, or 20 % of the ARFF training
rows) on the features
the model reads (pooled plain-view backbone features of images, the ARFF vectors), and
``mlknn`` (k = 10). All scored by ``retdm_keras.metrics.evaluate`` on the test split.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import REPO, log

IMAGE_SETS = {
    "miml_scene": "miml_scene",
    "ucm": "ucm",
}
MULAN_SETS = {
    "scene": ("scene-train.arff", "scene-test.arff", "scene.xml"),
    "enron": ("enron-train.arff", "enron-test.arff", "enron.xml"),
    "bibtex": ("bibtex-train.arff", "bibtex-test.arff", "bibtex.xml"),
    "corel5k": ("Corel5k-train-sparse.arff", "Corel5k-test-sparse.arff", "Corel5k.xml"),
    "tmc2007": ("tmc2007-500-train.arff", "tmc2007-500-test.arff", "tmc2007-500.xml"),
}
KEYS = ("average_precision", "mAP", "O-F1", "C-F1", "ranking_loss", "one_error", "coverage")


def data_args(data: Path, name: str) -> list[str]:
    """The CLI's data options for set ``name``."""
    if name in IMAGE_SETS:
        root = data / IMAGE_SETS[name]
        return [
            "--data-dir",
            str(root / "images"),
            "--labels",
            str(root / "labels.csv"),
            "--split-json",
            str(root / "split.json"),
        ]
    train, test, xml = MULAN_SETS[name]
    root = data / "mulan" / name
    return ["--arff-train", str(root / train), "--arff-test", str(root / test),
            "--labels-xml", str(root / xml)]  # fmt: skip


def train(
    data: Path,
    name: str,
    out: Path,
    seed: int,
    extra: list[str],
    data_options: list[str] | None = None,
) -> float:
    """Run ``retdm-keras train`` (default options + ``extra``) on set ``name`` (or on
    ``data_options``); its log goes to out/log.txt."""
    shutil.rmtree(out, ignore_errors=True)  # a fresh run (an old backup/ would be refused)
    out.mkdir(parents=True)
    options = data_args(data, name) if data_options is None else data_options
    argv = [sys.executable, "-m", "retdm_keras.cli", "train", *options,
            "--seed", str(seed), "--out", str(out), *extra]  # fmt: skip
    started = time.time()
    with open(out / "log.txt", "w") as log_file:
        subprocess.run(argv, check=True, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    return time.time() - started


def _test_data(data: Path, name: str):
    """``(train, val, test)`` datasets and test labels as the CLI builds them (seed 0)."""
    from retdm_keras import recipes

    if name in IMAGE_SETS:
        root = data / IMAGE_SETS[name]
        built = recipes.image_folder_data(
            root / "images", root / "labels.csv", split_json=root / "split.json"
        )
    else:
        train_file, test_file, xml = MULAN_SETS[name]
        root = data / "mulan" / name
        built = recipes.arff_data(
            root / train_file, root / test_file, labels_xml=root / xml, val_fraction=0.2
        )
    return built


def scores_of(y, p) -> dict:
    from retdm_keras.metrics import evaluate

    result = evaluate(y, p)
    return {k: result[k] for k in KEYS}


def retdm_alone(out: Path, test_ds, test_labels) -> dict:
    """The saved model's test scores with its baseline share set to 0."""
    import keras

    model = keras.models.load_model(out / "model.keras", compile=False)
    model.set_baseline(0.0)
    probabilities = model.predict(test_ds, verbose=0)
    keras.backend.clear_session()
    return scores_of(test_labels, probabilities)


def anchors(data: Path, name: str, model_path: Path) -> dict:
    """``br_lr`` and ``mlknn`` on the features the model reads."""
    import keras

    from retdm_keras.baseline_blend import baseline_features, baseline_scaling
    from retdm_keras.baselines import BinaryRelevanceLR, MLkNN

    built = _test_data(data, name)
    model = keras.models.load_model(model_path, compile=False)
    x_train, y_train = baseline_features(model, built.bank)
    x_val, y_val = baseline_features(model, built.val)
    x_test, y_test = baseline_features(model, built.test)
    keras.backend.clear_session()
    out = {}
    started = time.time()
    scaling = baseline_scaling(x_train)
    lr = BinaryRelevanceLR(scaling=scaling, tol=1e-6).fit(x_train, y_train, x_val, y_val)
    out["br_lr"] = {
        "test": scores_of(y_test, lr.predict_proba(x_test)),
        "C": lr.C_,
        "scaling": scaling,
        "seconds": time.time() - started,
    }
    log(f"  {name} br_lr: C={lr.C_} ({scaling}); {time.time() - started:.0f} s")
    started = time.time()
    knn = MLkNN(k=10).fit(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
    out["mlknn"] = {"test": scores_of(y_test, knn.predict_proba(x_test)),
                    "seconds": time.time() - started}  # fmt: skip
    return out


def run_defaults(seeds, data: Path, sets=None, work: Path | None = None, bce: bool = True) -> dict:
    """The section's results: ``{"sets": {name: {...}}}`` (``bce=False``: without the BCE
    runs and the deterministic anchors, for a caller that keeps stored ones)."""
    work = work or REPO / "runs" / "bench_defaults"
    names = list(sets or [*IMAGE_SETS, *MULAN_SETS])
    results: dict = {"sets": {}, "seeds": list(seeds)}
    for name in names:
        entry: dict = {"retdm": [], "retdm_alone": [], "bce": [], "baseline": [], "seconds": {}}
        built = _test_data(data, name)
        for seed in seeds:
            out = work / name / f"retdm-{seed}"
            seconds = train(data, name, out, seed, [])
            entry["seconds"].setdefault("retdm", []).append(seconds)
            entry["retdm"].append(_metrics(out))
            config = json.loads((out / "train_config.json").read_text())
            entry["baseline"].append(config.get("baseline_choice"))
            entry["retdm_alone"].append(retdm_alone(out, built.test, built.test_labels))
            share = (config.get("baseline_choice") or {}).get("weight")
            log(f"  {name} seed {seed}: RETDM {entry['retdm'][-1]['average_precision']:.4f} "
                f"(alone {entry['retdm_alone'][-1]['average_precision']:.4f}, β = {share}); "
                f"{seconds:.0f} s")  # fmt: skip
        if bce:
            entry.update(anchors(data, name, work / name / f"retdm-{seeds[0]}" / "model.keras"))
        results["sets"][name] = entry
        _save(results)
    for name in names if bce else ():
        entry = results["sets"][name]
        for seed in seeds:
            out = work / name / f"bce-{seed}"
            seconds = train(data, name, out, seed, ["--lam", "0", "--mu", "0", "--no-baseline"])
            entry["seconds"].setdefault("bce", []).append(seconds)
            entry["bce"].append(_metrics(out))
            log(f"  {name} seed {seed}: BCE {entry['bce'][-1]['average_precision']:.4f}; "
                f"{seconds:.0f} s")  # fmt: skip
        _save(results)
    return results


def _metrics(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics[k] for k in KEYS}


def _save(results: dict) -> None:
    """Partial results, so a long run that is stopped still leaves its numbers."""
    path = REPO / "runs" / "bench_defaults" / "partial.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":  # python benchmarks/bench_defaults.py [--keep-bce] [set ...]
    from bench_common import configure_environment, data_dir, write_json

    root = data_dir()
    configure_environment(root)
    os.environ.setdefault("RETDM_DATA_DIR", str(root))
    # the BCE runs and the anchors (BR-LR, ML-kNN) do not depend on RETDM's defaults
    keep_bce = "--keep-bce" in sys.argv
    chosen = [a for a in sys.argv[1:] if a != "--keep-bce"] or None
    result = run_defaults([0, 1, 2], root, chosen, bce=not keep_bce)
    path = REPO / "benchmarks" / "results" / "defaults_full.json"
    if chosen and path.exists():  # some sets re-run: the others keep their stored numbers
        stored = json.loads(path.read_text())["sets"]
        for name, entry in result["sets"].items():
            if keep_bce:
                for kept in ("bce", "br_lr", "mlknn"):
                    entry[kept] = stored[name][kept]
                entry["seconds"]["bce"] = stored[name]["seconds"]["bce"]
            stored[name] = entry
        result = {**result, "sets": stored}
    write_json(path, result)
