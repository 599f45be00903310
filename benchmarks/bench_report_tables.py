"""Markdown tables of the result JSON: accuracy (mean ± std per method, best mean in bold),
the λ × μ grid, the metrics at calibrated thresholds, and the cost section's tables."""

from __future__ import annotations

from retdm_keras.metrics import LOWER_IS_BETTER, METRIC_NAMES

LABELS = {
    "linear_probe": "linear probe",
    "bce": "BCE",
    "retdm_one_way": "RETDM one-way",
    "retdm": "**RETDM**",
    "retdm_no_rec": "RETDM no-rec",
    "c2ae": "C2AE",
    "mlknn": "ML-kNN",
    "br_lr": "BR-LR",
}


def mean_std(entry: dict, digits: int = 4) -> str:
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def _metric_label(metric: str) -> str:
    return f"{metric} {'↓' if metric in LOWER_IS_BETTER else '↑'}"


# the metrics that depend on the decision threshold (the rest only rank the scores)
THRESHOLDED = ("C-P", "C-R", "C-F1", "O-P", "O-R", "O-F1", "hamming_loss")


def accuracy_table(
    result: dict, metrics: tuple[str, ...] = METRIC_NAMES, key: str = "test"
) -> list[str]:
    """Mean ± std of ``metrics`` (rows) for every method (columns); best mean in bold.

    ``key``: ``"test"`` (threshold 0.5) or ``"test_calibrated"`` (per-class thresholds chosen
    on the validation split).
    """
    methods = {n: m for n, m in result["methods"].items() if key in m}
    names = list(methods)
    lines = [
        "| metric | " + " | ".join(LABELS.get(n, n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for metric in metrics:
        means = [methods[n][key][metric]["mean"] for n in names]
        best = min(means) if metric in LOWER_IS_BETTER else max(means)
        cells = []
        for n, mean in zip(names, means, strict=True):
            text = mean_std(methods[n][key][metric])
            cells.append(f"**{text}**" if mean == best else text)
        lines.append(f"| {_metric_label(metric)} | " + " | ".join(cells) + " |")
    return lines


def grid_table(grid: dict) -> list[str]:
    points = grid["points"]
    lams = sorted({p["lam"] for p in points})
    mus = sorted({p["mu"] for p in points})
    lines = [
        "| lam \\ mu | " + " | ".join(str(m) for m in mus) + " |",
        "|---" * (len(mus) + 1) + "|",
    ]
    for lam in lams:
        cells = []
        for mu in mus:
            match = [p for p in points if p["lam"] == lam and p["mu"] == mu]
            if match:
                v = match[0]["val"]
                cells.append(f"{v['average_precision']:.4f} / {v['mAP']:.4f}")
            else:
                cells.append("–")
        lines.append(f"| {lam} | " + " | ".join(cells) + " |")
    return lines


def calibrated_section(result: dict) -> list[str]:
    """The threshold-dependent metrics again, at per-class thresholds chosen on val."""
    if not any("test_calibrated" in m for m in result["methods"].values()):
        return []
    lines = [
        "With per-class thresholds chosen on the validation split (`thresholds.calibrate"
        '(..., "per_class_f1")`, what `retdm-keras calibrate` does) instead of 0.5; the '
        "ranking metrics do not depend on thresholds:",
        "",
    ]
    return lines + accuracy_table(result, THRESHOLDED, key="test_calibrated") + [""]


def cost_section(cost: dict) -> list[str]:
    lines = []
    st = cost["step_time"]
    lines += [
        f"**Train-step time** (MobileNetV2, {st['image_size']} px, batch {st['batch_size']}, "
        f"K = {st['num_neighbors']}, `train_on_batch` median after {st['warmup']} warm-up steps):",
        "",
        "| configuration | stage | median ms/step | ÷ BCE |",
        "|---|---|---|---|",
    ]
    for name, c in st["configs"].items():
        lines.append(
            f"| {name} | {c['stage']} | {c['median_ms']:.0f} (n={c['repeats']}) | "
            f"{c['ratio_to_bce']:.2f}× |"
        )
    nb = cost["neighbors"]
    lines += [
        "",
        f"**LabelNeighbors** (K = {nb['k']}; random labels, 80 labels, each on with p = 3/80; "
        "one child process per size; peak RSS increase = `ru_maxrss` after the build minus "
        "before it, labels already in memory):",
        "",
        "| samples | unique sets | build s | peak RSS MiB (increase) | VmHWM MiB | |",
        "|---|---|---|---|---|---|",
    ]
    for m in nb["measured"]:
        if "error" in m:
            lines.append(f"| {m['samples']:,} | – | – | – | – | {m['error'][:80]} |")
        else:
            hwm = m.get("vm_hwm_mib")
            lines.append(
                f"| {m['samples']:,} | {m['unique_sets']:,} | {m['build_seconds']:.1f} | "
                f"{m['peak_rss_mib']:.0f} (+{m['peak_rss_increase_mib']:.0f}) | "
                f"{'–' if hwm is None else f'{hwm:.0f}'} | measured |"
            )
    for m in nb["extrapolated"]:
        lines.append(
            f"| {m['samples']:,} | {m['unique_sets']:,} (counted) | "
            f"~{m['build_seconds_low']:.0f}–{m['build_seconds_high']:.0f} | "
            f"~+{m['peak_rss_increase_mib']:.0f} | – | **extrapolated**, not measured |"
        )
    for m in nb["extrapolated"]:
        lines += ["", f"Extrapolation to {m['samples']:,} samples: {m['model']}."]
    inf = cost["inference"]
    if "error" in inf:
        lines += ["", f"Inference child failed: {inf['error'][:300]}"]
        return lines
    p = inf["predict"]
    lines += [
        "",
        f"**Inference** (`model.predict`, MobileNetV2 {inf['image_size']} px, child process): "
        f"{p['1']['images_per_s']:.1f} images/s at batch 1 ({p['1']['images']} images), "
        f"{p['64']['images_per_s']:.1f} images/s at batch 64 ({p['64']['images']} images); "
        f"peak RSS {inf['peak_rss_after_predict_mib']:.0f} MiB (after import "
        f"{inf['rss_after_import_mib']:.0f}, after building the model "
        f"{inf['rss_after_build_mib']:.0f}; after the exports and latency runs "
        f"{inf['peak_rss_end_mib']:.0f}, VmHWM {inf.get('vm_hwm_end_mib') or 0:.0f}).",
    ]
    lat = inf["latency"]
    backends = list(lat["latency_ms"])
    lines += [
        "",
        f"**Latency** (`retdm_keras.export.benchmark_latency`, median of {lat['repeats']}; "
        f"export to ONNX + TFLite took {inf['export_seconds']:.0f} s):",
        "",
        "| batch | "
        + " | ".join(f"{b} ms" for b in backends)
        + " | "
        + " | ".join(f"{b} speed-up" for b in backends if b != "keras")
        + " |",
        "|---" * (1 + len(backends) + len(backends) - 1) + "|",
    ]
    for batch in lat["batch_sizes"]:
        key = str(batch)
        ms = [f"{lat['latency_ms'][b][key]:.1f}" for b in backends]
        speed = [f"{lat['speedup_vs_keras'][b][key]:.2f}×" for b in backends if b != "keras"]
        lines.append(f"| {batch} | " + " | ".join(ms + speed) + " |")
    return lines
