"""``scale``: training time and peak memory of ``retdm-keras train`` with default options on
the largest shapes we have: MULAN tmc2007-500 (21,519 training rows, 500 sparse features, 22
labels) and a generated problem shaped like the largest public sets (983 labels, about 12,700
distinct label sets, 500 sparse binary features).

Each run is a fresh subprocess (the CLI as a user runs it); its peak resident memory is the
child's ``ru_maxrss``, read by a fresh driver process per run (so it is that run's alone).
The generated set: each row draws 1–6 labels from a Zipf-like label distribution; every
label owns 12 of the 500 features, each present with probability 0.3 when the label is,
plus 1 % background noise.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def generated_arff(folder: Path, rows: int = 14_700, test_rows: int = 2_000,
                   labels: int = 983, features: int = 500, seed: int = 0) -> dict:  # fmt: skip
    """Write ``gen-train.arff`` / ``gen-test.arff`` (sparse ARFF); returns its shape."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, labels + 1) ** 0.8
    weights /= weights.sum()
    owned = np.stack([rng.choice(features, 12, replace=False) for _ in range(labels)])
    total = rows + test_rows
    y = np.zeros((total, labels), np.int8)
    for i in range(total):
        y[i, rng.choice(labels, rng.integers(1, 7), replace=False, p=weights)] = 1
    x = (rng.random((total, features)) < 0.01).astype(np.int8)
    for i in range(total):
        for j in np.flatnonzero(y[i]):
            cols = owned[j]
            x[i, cols] |= (rng.random(len(cols)) < 0.3).astype(np.int8)
    folder.mkdir(parents=True, exist_ok=True)
    header = ["@relation generated"]
    header += [f"@attribute f{k} {{0,1}}" for k in range(features)]
    header += [f"@attribute l{k} {{0,1}}" for k in range(labels)]
    header.append("@data")
    for name, part in (("gen-train.arff", slice(0, rows)), ("gen-test.arff", slice(rows, total))):
        with open(folder / name, "w") as fh:
            fh.write("\n".join(header) + "\n")
            for xi, yi in zip(x[part], y[part], strict=True):
                cells = [f"{k} 1" for k in np.flatnonzero(xi)]
                cells += [f"{features + k} 1" for k in np.flatnonzero(yi)]
                fh.write("{" + ",".join(cells) + "}\n")
    train_sets = {tuple(np.flatnonzero(r)) for r in y[:rows]}
    return {"rows": rows, "test_rows": test_rows, "labels": labels, "features": features,
            "distinct_label_sets": len(train_sets)}  # fmt: skip


def measured_run(argv: list[str]) -> dict:
    """Run the CLI once in a child; seconds and the child's peak RSS (MiB)."""
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "retdm_keras.cli", *argv], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.time() - started
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mib": peak, "log_tail": done.stdout[-1500:]}


def main() -> None:
    data = Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))
    work = REPO / "runs" / "bench_scale"
    which = sys.argv[1]
    if which == "tmc2007":
        root = data / "mulan" / "tmc2007"
        files = [root / "tmc2007-500-train.arff", root / "tmc2007-500-test.arff"]
        extra = ["--labels-xml", str(root / "tmc2007-500.xml")]
        shape = {"rows": 21_519, "labels": 22, "features": 500}
    else:
        shape = generated_arff(work / "generated")
        files = [work / "generated" / "gen-train.arff", work / "generated" / "gen-test.arff"]
        extra = ["--num-labels", "983"]
    out = work / which
    argv = ["train", "--arff-train", str(files[0]), "--arff-test", str(files[1]), *extra,
            "--out", str(out), "--verbose", "0"]  # fmt: skip
    result = {"set": which, "shape": shape, **measured_run(argv)}
    config = json.loads((out / "train_config.json").read_text())
    result["baseline_choice"] = config.get("baseline_choice")
    result["test"] = json.loads((out / "metrics.json").read_text())
    print(json.dumps(result, indent=1, default=float))
    path = REPO / "benchmarks" / "results" / f"scale_{which}.json"
    path.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":  # python benchmarks/bench_scale.py tmc2007|generated
    main()
