"""``refit``: should ``retdm-keras train`` retrain RETDM on all training rows after the rows it
held out have chosen the baseline's share? Measured on validation data only.

Without validation data the CLI holds out 20 % of the training rows to choose β (the share of
the tuned logistic-regression baseline) and the baseline's ``C``; the baseline is then refit on
all rows, but RETDM keeps the 80 % it was trained on. This section compares the two final
models on rows none of them saw, without touching any test split: each MULAN set's *training*
file is split (seeded, per seed) into A (80 %) and B (20 %, the judge), and on A

* ``held_out``: ``retdm-keras train`` with default options (RETDM on 80 % of A, β chosen on
  the other 20 %, the baseline refit on all of A) — today's default;
* ``refit``: the same baseline head and β, with RETDM retrained on all of A: the saved
  ``--no-baseline`` model of the same seed (what the refit trains) with the first run's
  baseline head copied in;
* ``alone_all``: that retrained RETDM alone (β = 0);

are scored on B. ``python benchmarks/bench_refit.py [set ...]`` writes
``benchmarks/results/refit_validation.json``. Then ``--replay [--seeds=0,1]``: ``refit_replay``,
the CLI's own refit (RETDM retrained on all of A replaying the learning rates the held-out
rows chose, which the first ``refit`` lacked: without validation rows the plateau schedule
never lowers them), on the same splits and seeds.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from bench_common import REPO, log
from bench_defaults import KEYS, MULAN_SETS, scores_of, train

SPLIT_FRACTION = 0.2


def split_arff(source: Path, folder: Path, seed: int) -> tuple[Path, Path]:
    """Write ``A.arff`` / ``B.arff``: the header and a seeded 80 / 20 split of the data rows."""
    lines = source.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    header = lines[:start]
    rows = [line for line in lines[start:] if line.strip() and not line.startswith("%")]
    order = np.random.default_rng(seed).permutation(len(rows))
    judged = int(round(SPLIT_FRACTION * len(rows)))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "A.arff", folder / "B.arff"
    for path, part in zip(paths, (order[judged:], order[:judged]), strict=True):
        path.write_text("\n".join([*header, *(rows[i] for i in sorted(part))]) + "\n")
    return paths


def run_set(name: str, seeds, data: Path, work: Path) -> dict:
    """Per seed: the scores on B of ``held_out``, ``refit`` and ``alone_all``."""
    import keras

    from retdm_keras import recipes

    train_file, _, xml = MULAN_SETS[name]
    root = data / "mulan" / name
    entry: dict = {"held_out": [], "refit": [], "alone_all": [], "weight": []}
    for seed in seeds:
        a, b = split_arff(root / train_file, work / name / f"split-{seed}", seed)
        args = ["--arff-train", str(a), "--arff-test", str(b), "--labels-xml", str(root / xml)]
        first, second = work / name / f"default-{seed}", work / name / f"all-{seed}"
        seconds = [train(data, name, first, seed, [], data_options=args)]
        seconds.append(train(data, name, second, seed, ["--no-baseline"], data_options=args))
        config = json.loads((first / "train_config.json").read_text())
        choice = config.get("baseline_choice") or {}
        weight = float(choice.get("weight", 0.0))
        built = recipes.arff_data(a, b, labels_xml=root / xml, val_fraction=None)
        held = keras.models.load_model(first / "model.keras", compile=False)
        refit = keras.models.load_model(second / "model.keras", compile=False)
        y_judge = built.test_labels
        entry["alone_all"].append(scores_of(y_judge, refit.predict(built.test, verbose=0)))
        entry["held_out"].append(scores_of(y_judge, held.predict(built.test, verbose=0)))
        if held.baseline_head is not None:
            dense = held.baseline_head.dense
            refit.set_baseline(weight, dense.kernel.numpy(), dense.bias.numpy())
        entry["refit"].append(scores_of(y_judge, refit.predict(built.test, verbose=0)))
        entry["weight"].append(weight)
        entry.setdefault("seconds", []).append(seconds)
        keras.backend.clear_session()
        log(f"  {name} seed {seed} (β = {weight}): held-out "
            f"{entry['held_out'][-1]['average_precision']:.4f}, refit "
            f"{entry['refit'][-1]['average_precision']:.4f}, alone on all "
            f"{entry['alone_all'][-1]['average_precision']:.4f}; {seconds[0]:.0f} + "
            f"{seconds[1]:.0f} s")  # fmt: skip
    for model in ("held_out", "refit", "alone_all"):
        entry[f"{model}_mean"] = {k: float(np.mean([r[k] for r in entry[model]])) for k in KEYS}
    return entry


def run_replay(name: str, seeds, data: Path, work: Path, stored: dict) -> dict:
    """``refit_replay`` per seed: ``retdm-keras train`` as it is now (RETDM retrained on all of
    A with the learning rates the held-out rows chose), scored on B; ``stored`` is the set's
    entry from the first measurement (its ``held_out`` is the same run without the refit)."""
    train_file, _, xml = MULAN_SETS[name]
    root = data / "mulan" / name
    entry = dict(stored)
    entry["refit_replay"], entry["replay_weight"], entry["replay_seconds"] = [], [], []
    for seed in seeds:
        a, b = split_arff(root / train_file, work / name / f"split-{seed}", seed)
        args = ["--arff-train", str(a), "--arff-test", str(b), "--labels-xml", str(root / xml)]
        out = work / name / f"replay-{seed}"
        entry["replay_seconds"].append(train(data, name, out, seed, [], data_options=args))
        metrics = json.loads((out / "metrics.json").read_text())
        entry["refit_replay"].append({k: metrics[k] for k in KEYS})
        choice = json.loads((out / "train_config.json").read_text()).get("baseline_choice")
        entry["replay_weight"].append(float((choice or {}).get("weight", 0.0)))
        log(f"  {name} seed {seed} (β = {entry['replay_weight'][-1]}): refit with the "
            f"schedule replayed {metrics['average_precision']:.4f}; held-out "
            f"{stored['held_out'][seed]['average_precision']:.4f}; "
            f"{entry['replay_seconds'][-1]:.0f} s")  # fmt: skip
    return entry


if __name__ == "__main__":
    from bench_common import configure_environment, data_dir, write_json

    root = data_dir()
    configure_environment(root)
    os.environ.setdefault("RETDM_DATA_DIR", str(root))
    replay = "--replay" in sys.argv  # the CLI's refit (schedule replayed) against held_out
    chosen = [a.split("=")[1] for a in sys.argv if a.startswith("--seeds=")]
    seeds = [int(seed) for seed in chosen[0].split(",")] if chosen else [0, 1, 2]
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(MULAN_SETS)
    path = REPO / "benchmarks" / "results" / "refit_validation.json"
    results = json.loads(path.read_text()) if path.exists() else {"sets": {}}
    results["split_fraction"] = SPLIT_FRACTION
    work = REPO / "runs" / "bench_refit"
    for name in names:
        if replay:
            stored = results["sets"][name]
            results["sets"][name] = run_replay(name, seeds, root, work, stored)
        else:
            results["sets"][name] = run_set(name, seeds, root, work)
        write_json(path, results)
