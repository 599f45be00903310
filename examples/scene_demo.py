"""Tuned logistic regression vs BCE vs RETDM on the MIML scene images, frozen backbone.

This is what `make demo` runs; on a 2-core CPU it takes a few minutes (less with a warm
feature cache). It walks through the library's fast path on real data:

1. **Data.** The MIML scene set (Zhang & Zhou): 2,000 photos, 5 labels (desert, mountains,
   sea, sunset, trees), canonical split 1,400 train / 200 val / 400 test, read with
   `retdm_keras.data.from_folder` (decode, the paper's corner/centre multi-scale crops and
   flips for training, the row `index` every sample carries).
2. **Frozen backbone.** MobileNetV2 (ImageNet) stays frozen: `fit_stages(...,
   freeze_backbone=True)` extracts its pooled features once — `--views` views of every
   training image (the plain one and `--views` − 1 augmented), the plain view of the
   validation and test images — and
   caches them on disk, so the models below train on vectors in seconds. The models that
   come out still predict on raw images.
3. **Three methods, each over `--seeds`:**
   * **tuned BR-LR**: per-label L2 logistic regression on the plain-view features of the
     training images, its C chosen on the validation split by average precision
     (`retdm_keras.baselines.BinaryRelevanceLR`: what scikit-learn's `LogisticRegression`
     with a tuned C gives; deterministic, so its std is 0);
   * **BCE**: the classifier stage, then the joint stage with λ = μ = 0 (the metric stage has
     nothing to train and is skipped);
   * **RETDM alone**: the *same* classifier stage (its weights are shared with BCE: that
     part of the two schedules is one computation), then the metric and joint stages with
     λ, μ;
   * **RETDM (default)**: that model as `fit_stages` leaves it by default: the tuned BR-LR
     mixed into its predictions at the share chosen on the validation split (0 keeps RETDM
     alone, 1 is the baseline; `retdm_keras.baseline_blend`).
4. **Evaluation.** The paper's 11 metrics plus mAP on the 400 test images, mean ± std over
   the seeds; `runs/demo/results.json` holds every number and `runs/demo/average_precision.png`
   a bar chart.

Run it (from the repository root, after `make install`)::

    .venv/bin/python examples/scene_demo.py                  # the defaults below
    .venv/bin/python examples/scene_demo.py --seeds 0 --views 2

`examples/scene_finetune_demo.py` (`make demo-finetune`) fine-tunes the whole backbone
instead (much slower on a CPU). The data is found through `$RETDM_DATA_DIR` (default
`../shared/data`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# examples/_data.py (the script folder is on sys.path)
from _data import REPO, find_data_dir, quiet_retracing_notices, use_offline_weights

METHODS = ("linear_probe", "bce", "retdm_alone", "retdm")
TITLES = {
    "linear_probe": "tuned BR-LR",
    "bce": "BCE",
    "retdm_alone": "RETDM alone",
    "retdm": "RETDM (default)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--views",
        type=int,
        default=4,
        help="views per training image (the plain one and V-1 augmented)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs=3, default=(10, 5, 10))
    parser.add_argument("--learning-rates", type=float, nargs=3, default=(0.01, 0.01, 0.001))
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--mu", type=float, default=1.0)
    parser.add_argument(
        "--probe-cs", type=float, nargs="+", default=None,
        help="candidate C of the tuned BR-LR (default: BinaryRelevanceLR's)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--feature-cache", type=Path, default=REPO / "runs" / "feature-cache",
        help="where the extracted backbone features are kept between runs",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "demo")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = find_data_dir()
    use_offline_weights(data_dir / "keras_home" / "models")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import numpy as np

    import retdm_keras
    from retdm_keras.baselines import BinaryRelevanceLR
    from retdm_keras.data import from_folder
    from retdm_keras.frozen_features import FeatureCache, cached_features, prepare_frozen_data
    from retdm_keras.metrics import LOWER_IS_BETTER, evaluate
    from retdm_keras.training import resolve_verbose

    quiet_retracing_notices()  # each model's first predict is a trace, not a loop

    started = time.time()
    scene = data_dir / "miml_scene"

    def split(name: str, training: bool):
        return from_folder(
            scene / "images",
            scene / "labels.csv",
            split=name,
            split_json=scene / "split.json",
            image_size=args.image_size,
            batch_size=args.batch_size,
            training=training,
            cache=True,
            seed=0,
        )

    train_ds, train_files = split("train", training=True)
    bank_ds, _ = split("train", training=False)
    val_ds, val_files = split("val", training=False)
    test_ds, test_files = split("test", training=False)
    label_names = list(train_files.label_names)
    print(
        f"MIML scene: {len(train_files)} train / {len(val_files)} val / {len(test_files)} "
        f"test images, labels {label_names}; MobileNetV2 (ImageNet, frozen) at "
        f"{args.image_size} px, {args.views} views"
    )

    def build(lam: float, mu: float, seed: int) -> retdm_keras.RETDM:
        keras.utils.set_random_seed(seed)
        return retdm_keras.RETDM(
            len(label_names),
            backbone="mobilenet_v2",
            weights="imagenet",
            image_size=args.image_size,
            lam=lam,
            mu=mu,
            label_names=label_names,
        )

    def fit(model, epochs, seed, baseline=False):
        keras.utils.set_random_seed(seed)
        return retdm_keras.fit_stages(
            model,
            train_ds,
            val_ds,
            epochs=epochs,
            learning_rates=args.learning_rates,
            bank_data=bank_ds,
            freeze_backbone=True,
            feature_views=args.views,
            feature_cache=args.feature_cache,
            verbose=0,
            baseline=baseline,
        )

    # The plain-view features of every split, for the tuned BR-LR and for scoring the test
    # images (the heads on these features are exactly the models' image predictions).
    t0 = time.time()
    extractor = build(0.0, 0.0, 0)
    verbose = resolve_verbose("auto")  # progress bars on a terminal, a line per pass otherwise
    frozen = prepare_frozen_data(  # what fit_stages(freeze_backbone=True) reads from the cache
        extractor,
        train_ds,
        val_ds,
        bank_ds,
        views=args.views,
        cache_dir=args.feature_cache,
        verbose=verbose,
    )
    test_features, _ = cached_features(
        extractor, test_ds, cache=FeatureCache(args.feature_cache), verbose=verbose,
        description="test features",
    )  # fmt: skip
    plain = {"train": frozen.bank_features, "val": frozen.val_features, "test": test_features}
    print(f"features ready in {time.time() - t0:.0f} s")

    y_train, y_val, y_test = train_files.labels, val_files.labels, test_files.labels
    # the tuned baseline: C chosen on the validation split, then refit on training and
    # validation rows (what RETDM's default mixes in)
    probe = BinaryRelevanceLR(**({"Cs": args.probe_cs} if args.probe_cs else {}))
    probe.fit(plain["train"], y_train, plain["val"], y_val)
    probe_scores = evaluate(y_test, probe.predict_proba(plain["test"]))
    print(f"tuned BR-LR: C = {probe.C_} chosen on the validation split")
    per_seed: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for seed in args.seeds:
        t_seed = time.time()
        per_seed["linear_probe"].append(probe_scores)  # deterministic: the same every seed
        retdm = build(args.lam, args.mu, seed)
        fit(retdm, (args.epochs[0], 0, 0), seed)  # stage 1, shared with BCE
        bce = build(0.0, 0.0, seed)
        bce.set_weights(retdm.get_weights())
        fit(bce, (0, 0, args.epochs[2]), seed)
        fit(retdm, (0, args.epochs[1], args.epochs[2]), seed, baseline=None)  # the default
        share = retdm.baseline_weight
        for name, model, weight in (
            ("bce", bce, 0.0),
            ("retdm_alone", retdm, 0.0),
            ("retdm", retdm, share),
        ):
            model.set_baseline(weight)
            scores = model.predict({"backbone_features": plain["test"]}, verbose=0)
            per_seed[name].append(evaluate(y_test, scores))
        print(f"seed {seed}: the tuned BR-LR's share in RETDM's predictions: {share:g}")
        print(f"seed {seed}: {time.time() - t_seed:.0f} s")

    summary = {
        method: {
            metric: {
                "mean": float(np.mean([r[metric] for r in runs])),
                "std": float(np.std([r[metric] for r in runs])),
            }
            for metric in runs[0]
        }
        for method, runs in per_seed.items()
    }
    wall = time.time() - started
    print()
    print(
        f"MIML scene test split ({len(test_files)} images), threshold 0.5, "
        f"mean ± std over seeds {args.seeds}:"
    )
    print(format_summary(summary, LOWER_IS_BETTER))
    wins = sum(
        (summary["retdm"][k]["mean"] < summary["bce"][k]["mean"]) == (k in LOWER_IS_BETTER)
        and summary["retdm"][k]["mean"] != summary["bce"][k]["mean"]
        for k in summary["retdm"]
    )
    print(f"RETDM better than BCE on {wins} of {len(summary['retdm'])} metrics (means)")
    print(f"wall time: {wall / 60:.1f} min")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "data": "MIML scene, canonical split, test",
        "backbone": "mobilenet_v2 (ImageNet, frozen)",
        "image_size": args.image_size,
        "views": args.views,
        "seeds": args.seeds,
        "epochs": list(args.epochs),
        "learning_rates": list(args.learning_rates),
        "lam": args.lam,
        "mu": args.mu,
        "probe": {
            "model": "BinaryRelevanceLR (per-label L2 logistic regression), C chosen on val, "
            "refit on train + val",
            "C": probe.C_,
            "Cs": list(probe.Cs_),
            "validation_average_precision": [float(v) for v in probe.scores_],
        },
        "bce": "the shared classifier stage, then the joint stage with lam = mu = 0",
        "summary": summary,
        "per_seed": per_seed,
        "wall_seconds": wall,
        "keras_version": keras.__version__,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    plot_path = plot_average_precision(summary, args.out / "average_precision.png")
    print(f"results written to {args.out / 'results.json'} and {plot_path}")
    return 0


def format_summary(summary: dict, lower_is_better) -> str:
    """A text table: metrics as rows, methods as columns, ``mean ± std``, best mean starred."""
    metrics = list(summary[METHODS[0]])
    rows = [["metric", *(TITLES[m] for m in METHODS)]]
    for metric in metrics:
        means = [summary[m][metric]["mean"] for m in METHODS]
        best = min(means) if metric in lower_is_better else max(means)
        arrow = "↓" if metric in lower_is_better else "↑"
        cells = [
            f"{summary[m][metric]['mean']:.4f} ± {summary[m][metric]['std']:.4f}"
            + ("*" if summary[m][metric]["mean"] == best else " ")
            for m in METHODS
        ]
        rows.append([f"{metric} {arrow}", *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("↑ higher is better, ↓ lower is better, * best mean")
    return "\n".join(lines)


def plot_average_precision(summary: dict, path: Path) -> Path:
    """Bars of average precision and mAP per method (mean, with the seed std as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ("average_precision", "mAP")
    x = np.arange(len(METHODS))
    fig, ax = plt.subplots(figsize=(7.5, 3.5))
    for i, metric in enumerate(metrics):
        means = [summary[m][metric]["mean"] for m in METHODS]
        stds = [summary[m][metric]["std"] for m in METHODS]
        ax.bar(x + (i - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=metric)
    lows = [summary[m][k]["mean"] for m in METHODS for k in metrics]
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.0)
    ax.set_xticks(x, [TITLES[m] for m in METHODS])
    ax.set_ylabel("MIML scene test")
    ax.set_title("Frozen MobileNetV2: mean ± std over seeds")
    ax.legend(loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
