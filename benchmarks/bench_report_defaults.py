"""The ``defaults`` section's page: ``benchmarks/results/defaults_full.md`` from
``defaults_full.json`` (``bench_defaults.py``).

One table: per data set, the test AP and mAP of RETDM at the CLI's defaults (the tuned baseline
mixed in at the share chosen on validation data), of that model with the share set to 0
(RETDM alone), of BCE, of the tuned BR-LR and of ML-kNN (means over seeds ± sample std; the
deterministic anchors once), the gap to BR-LR against the seed spread, the chosen shares, and
the training time; then the per-seed numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TITLES = {
    "miml_scene": "MIML scene images (1,400 / 200 val / 400)",
    "ucm": "UC Merced images (1,260 / 210 val / 210)",
    "scene": "MULAN scene (1,211 / 1,196; 294 dense, 6 labels)",
    "enron": "MULAN enron (1,123 / 579; 1,001 sparse, 53 labels)",
    "bibtex": "MULAN bibtex (4,880 / 2,515; 1,836 sparse, 159 labels)",
    "corel5k": "MULAN corel5k (4,500 / 500; 499 sparse, 374 labels)",
    "tmc2007": "MULAN tmc2007-500 (21,519 / 7,077; 500 sparse, 22 labels)",
}


def _mean_std(runs: list[dict], key: str) -> tuple[float, float]:
    values = np.array([r[key] for r in runs], float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _cell(runs: list[dict], key: str) -> str:
    if not runs:
        return "—"
    mean, std = _mean_std(runs, key)
    return f"{mean:.4f} ± {std:.4f}"


def report(result: dict) -> str:
    """The markdown page."""
    seeds = result.get("seeds", [])
    lines = [
        "# What `retdm-keras train` gives with default options, against the tuned baseline",
        "",
        f"Test splits; RETDM and BCE: mean ± sample std over seeds {seeds}; BR-LR (C chosen on "
        "validation rows by AP, refit on all of them) and ML-kNN (k = 10) are deterministic. "
        "*RETDM* is the CLI's default: the tuned logistic regression mixed in at the share β "
        "chosen on validation data (the image sets' val split; 20 % of the ARFF training "
        "rows, held out, after which RETDM is retrained on all rows replaying the learning "
        "rates the held-out rows chose). *alone*: the same model with β = 0. *BCE*: "
        "`--lam 0 --mu 0 --no-baseline`. Gap: RETDM − BR-LR, in units of RETDM's seed std.",
        "",
        "| data | metric | RETDM | alone | BCE | BR-LR | ML-kNN | gap / std | β per seed "
        "| train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in result["sets"].items():
        shares = [(b or {}).get("weight") for b in entry.get("baseline", [])]
        seconds = entry.get("seconds", {}).get("retdm", [])
        for metric in ("average_precision", "mAP"):
            br = entry["br_lr"]["test"][metric] if "br_lr" in entry else float("nan")
            mean, std = _mean_std(entry["retdm"], metric)
            gap = (mean - br) / std if std > 0 else float("inf")
            knn = entry["mlknn"]["test"][metric] if "mlknn" in entry else float("nan")
            label = "AP" if metric == "average_precision" else "mAP"
            first = metric == "average_precision"
            lines.append(
                f"| {TITLES.get(name, name) if first else ''} | {label} | "
                f"{_cell(entry['retdm'], metric)} | {_cell(entry['retdm_alone'], metric)} | "
                f"{_cell(entry.get('bce', []), metric)} | {br:.4f} | {knn:.4f} | "
                f"{mean - br:+.4f} ({gap:+.1f}) | "
                f"{' / '.join(f'{s:g}' for s in shares if s is not None) if first else ''} | "
                f"{f'{np.mean(seconds):.0f}' if first and seconds else ''} |"
            )
    lines += ["", "Per seed (AP / mAP):", "", "| data | method | " + " | ".join(
        f"seed {s}" for s in seeds) + " |", "|---|---|" + "---|" * len(seeds)]  # fmt: skip
    for name, entry in result["sets"].items():
        for method in ("retdm", "retdm_alone", "bce"):
            runs = entry.get(method, [])
            if not runs:
                continue
            cells = [f"{r['average_precision']:.4f} / {r['mAP']:.4f}" for r in runs]
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python benchmarks/bench_report_defaults.py [results.json]
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "defaults_full.json"
    text = report(json.loads(source.read_text()))
    (RESULTS / "defaults_full.md").write_text(text)
    print(text)
