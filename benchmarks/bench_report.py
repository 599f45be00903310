"""``summary.md`` and the README's "Results" block from the result JSON files of one mode.

``write_summary`` writes ``benchmarks/results/summary_<mode>.md`` (every table); ``update_readme``
replaces the text between the two ``README_*`` markers of ``README.md`` with
``readme_block`` — full-mode results only, and no timestamps, so the block is a pure function
of the committed JSON files (``tests/test_benchmark_report.py`` checks it is up to date).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench_common import PAPER_METRICS, better, read_json, result_path

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
TARGET_AP, TARGET_OF1, TARGET_WINS, TARGET_RATIO, TARGET_NEIGHBOURS_S = 0.955, 0.90, 8, 1.3, 10.0


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


def wins(result: dict, a: str = "retdm", b: str = "bce") -> tuple[int, list[str]]:
    """How many of the paper's 11 metrics ``a`` beats ``b`` on (test means)."""
    ta, tb = result["methods"][a]["test"], result["methods"][b]["test"]
    won = [m for m in PAPER_METRICS if better(m, ta[m]["mean"], tb[m]["mean"], LOWER_IS_BETTER)]
    return len(won), won


def clear_wins(result: dict, a: str = "retdm", b: str = "bce") -> list[tuple[str, float, float]]:
    """The metrics of ``wins`` where the gap of the means exceeds the larger of the two seed
    stds: ``[(metric, mean of a - mean of b, larger std)]``."""
    ta, tb = result["methods"][a]["test"], result["methods"][b]["test"]
    out = []
    for metric in wins(result, a, b)[1]:
        gap, spread = (
            ta[metric]["mean"] - tb[metric]["mean"],
            max(ta[metric]["std"], tb[metric]["std"]),
        )
        if abs(gap) > spread:
            out.append((metric, gap, spread))
    return out


def classical_lines(result: dict, names: tuple[str, ...] = ("br_lr", "mlknn")) -> list[str]:
    """One sentence: RETDM's test average precision and ranking loss against the classical
    baselines present in ``result`` (empty when none is)."""
    methods = result["methods"]
    present = [n for n in names if n in methods]
    if not present or "retdm" not in methods:
        return []

    def pair(metric: str) -> str:
        ours = methods["retdm"]["test"][metric]["mean"]
        theirs = ", ".join(
            f"{LABELS.get(n, n)} {methods[n]['test'][metric]['mean']:.4f}" for n in present
        )
        return f"{metric} {ours:.4f} vs {theirs}"

    beaten = [
        LABELS.get(n, n)
        for n in present
        if all(
            better(m, methods["retdm"]["test"][m]["mean"], methods[n]["test"][m]["mean"],
                   LOWER_IS_BETTER)
            for m in ("average_precision", "ranking_loss")
        )
    ]  # fmt: skip
    verdict = (
        f"RETDM beats {' and '.join(beaten)} on both metrics"
        if beaten
        else "RETDM beats none of them on both"
    )
    return [f"RETDM against the classical baselines: {pair('average_precision')}; "
            f"{pair('ranking_loss')}. {verdict}.", ""]  # fmt: skip


def status(ok: bool, gap: str) -> str:
    return "met" if ok else f"missed by {gap}"


def targets(miml: dict | None, cost: dict | None, frozen: dict | None = None) -> list[str]:
    lines = ["| target | measured | status |", "|---|---|---|"]
    if frozen:
        import bench_report_frozen

        lines += bench_report_frozen.targets(frozen)
    if miml:
        retdm = miml["methods"]["retdm"]["test"]
        ap, of1 = retdm["average_precision"], retdm["O-F1"]
        ap_gap, of1_gap = TARGET_AP - ap["mean"], TARGET_OF1 - of1["mean"]
        lines.append(
            f"| RETDM average precision ≥ {TARGET_AP} (MIML test) | {mean_std(ap)} | "
            f"{status(ap_gap <= 0, f'{ap_gap:.4f}')} |"
        )
        lines.append(
            f"| RETDM O-F1 ≥ {TARGET_OF1} (MIML test) | {mean_std(of1)} | "
            f"{status(of1_gap <= 0, f'{of1_gap:.4f}')} |"
        )
        calibrated = miml["methods"]["retdm"].get("test_calibrated")
        if calibrated:
            gap = TARGET_OF1 - calibrated["O-F1"]["mean"]
            lines.append(
                f"| (for reference) RETDM O-F1 at per-class thresholds chosen on val | "
                f"{mean_std(calibrated['O-F1'])} | {status(gap <= 0, f'{gap:.4f}')} |"
            )
        count, won = wins(miml)
        lines.append(
            f"| RETDM better than BCE on ≥ {TARGET_WINS} of 11 metrics (MIML test means) | "
            f"{count} of 11 ({', '.join(won) or 'none'}) | "
            f"{status(count >= TARGET_WINS, f'{TARGET_WINS - count} metrics')} |"
        )
    if cost:
        configs = cost["step_time"]["configs"]
        ratio = configs["retdm_memory_bank"]["ratio_to_bce"]
        lines.append(
            f"| train-step time RETDM (memory bank) ÷ BCE ≤ {TARGET_RATIO}× | {ratio:.2f}× | "
            f"{status(ratio <= TARGET_RATIO, f'{ratio - TARGET_RATIO:.2f}×')} |"
        )
        hundred = [
            m
            for m in cost["neighbors"]["measured"]
            if m.get("samples") == 100_000 and "build_seconds" in m
        ]
        if hundred:
            secs = hundred[0]["build_seconds"]
            lines.append(
                f"| LabelNeighbors build, 100,000 × 80, < {TARGET_NEIGHBOURS_S:.0f} s | "
                f"{secs:.1f} s | "
                f"{status(secs < TARGET_NEIGHBOURS_S, f'{secs - TARGET_NEIGHBOURS_S:.1f} s')} |"
            )
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


def _params(result: dict) -> list[str]:
    out = []
    for name, entry in result["methods"].items():
        params = ", ".join(f"{k}={v}" for k, v in entry.get("params", {}).items())
        seconds = sum(entry.get("seconds", [])) / max(1, len(entry.get("seconds", [])))
        out.append(f"`{name}` ({params}; ~{seconds:.0f} s per seed)")
    return out


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


def write_summary(out: Path, mode: str, settings: dict) -> Path:
    miml = read_json(result_path(out, "miml", mode))
    mulan = read_json(result_path(out, "mulan", mode))
    cost = read_json(result_path(out, "cost", mode))
    frozen = read_json(result_path(out, "frozen", mode))
    meta = read_json(result_path(out, "meta", mode)) or {}
    quick = mode == "quick"
    title = "QUICK run — smoke-sized, not the benchmark" if quick else "full run"
    lines = [f"# RETDM benchmarks: {title}", ""]
    if quick:
        lines += [
            "> **Quick mode** (`python benchmarks/run.py --quick`): smaller images, fewer "
            "epochs, a smaller grid and smaller cost cases than the full run. Use it to check "
            "that the harness works and for rough trends only; the targets below are judged on "
            "quick numbers and say nothing about the full configuration.",
            "",
        ]
    lines += [
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `benchmarks/run.py"
        f"{' --quick' if quick else ''}`; files: `*_{mode}.json`, `*_{mode}.png`.",
        "",
    ]
    if meta:
        sections = meta.get("sections", {})
        timing = ", ".join(f"{k} {v / 60:.1f} min" for k, v in sections.items())
        machine = meta.get("machine", {})
        lines += [
            f"Machine: {machine.get('cpu_count')} CPU cores (shared, run under nice "
            f"{machine.get('nice')}), {machine.get('platform')}, Python {machine.get('python')}, "
            f"TensorFlow {machine.get('tensorflow')}, Keras {machine.get('keras')}. "
            f"Wall time per section: {timing}.",
            "",
        ]
    lines += ["Settings:", ""]
    lines += [f"* {note}" for note in settings.get("notes", [])]
    lines += [""]

    lines += ["## Targets", ""]
    lines += targets(miml, cost, frozen)
    lines += [""]

    if miml:
        lines += [
            "## MIML scene images (test split, 400 images)",
            "",
            f"MobileNetV2 1.0, ImageNet weights, {miml['image_size']} px, batch "
            f"{miml['batch_size']}, stages {tuple(miml['epochs'])} epochs at learning rates "
            f"{tuple(miml['learning_rates'])} (SGD, momentum 0.9, weight decay 1e-4); "
            f"{miml['sizes']['train']} train / {miml['sizes']['val']} val / "
            f"{miml['sizes']['test']} test images. Mean ± sample std over seeds "
            f"{miml['seeds']} (initialisation, batch order, crops; the split is fixed). "
            "Bold: best mean.",
            "",
        ]
        lines += accuracy_table(miml)
        count, _ = wins(miml)
        lines += ["", f"RETDM beats BCE on {count} of the paper's 11 metrics (test means). "]
        if len(miml["grid"]["points"]) > 1:
            lines[-1] += (
                f"λ = {miml['chosen']['lam']}, μ = {miml['chosen']['mu']} chosen on the "
                "validation split (seed 0, best validation average precision among μ > 0, "
                "tie-break mAP). Validation average precision / mAP over the grid (one shared "
                "stage-1 checkpoint):"
            )
            lines += [""] + grid_table(miml["grid"])
        else:
            lines[-1] += (
                f"RETDM at the library defaults λ = {miml['chosen']['lam']}, μ = "
                f"{miml['chosen']['mu']} (no λ × μ grid)."
            )
        lines += ["", "Per method: " + "; ".join(_params(miml)) + ".", ""]
        lines += calibrated_section(miml)

    if mulan:
        lines += [
            "## MULAN scene features (scene-test, 1,196 instances)",
            "",
            f"{mulan['backbone']}; stages {tuple(mulan['epochs'])} epochs at "
            f"{tuple(mulan['learning_rates'])}; {mulan['sizes']['train']} train / "
            f"{mulan['sizes']['val']} val (10 % of scene-train, fixed) / "
            f"{mulan['sizes']['test']} test. λ = {mulan['chosen']['lam']}, μ = "
            f"{mulan['chosen']['mu']} from the built-in `scene-features` recipe (chosen on that "
            f"validation fraction). Mean ± sample std over seeds {mulan['seeds']}.",
            "",
        ]
        lines += accuracy_table(mulan)
        count, _ = wins(mulan)
        lines += [
            "",
            f"RETDM beats BCE on {count} of 11 metrics here. Published ML-kNN numbers for "
            "MULAN scene are not quoted: we could not confirm them with certainty.",
            "",
            "Per method: " + "; ".join(_params(mulan)) + ".",
            "",
        ]
        lines += classical_lines(mulan)
        lines += calibrated_section(mulan)

    if frozen:
        import bench_report_frozen

        lines += bench_report_frozen.section(
            frozen, "## MIML scene images, frozen backbone", mode=mode
        )
    if cost or frozen:
        import bench_report_frozen

        lines += ["## Cost", ""]
        lines += cost_section(cost) if cost else []
        lines += bench_report_frozen.cost_lines(frozen) if frozen else []
        lines += [""]

    lines += ["## Plots", ""]
    for name, caption in (
        ("convergence", "Loss terms per epoch across the three stages (RETDM, seed 0)"),
        ("sensitivity", "λ × μ sensitivity on MIML validation"),
        ("latency", "Keras vs ONNX Runtime vs TFLite latency"),
        ("convergence_frozen", "Frozen backbone: metric loss per epoch, stages 2 and 3"),
    ):
        path = result_path(out, name, mode, ".png")
        if path.exists():
            lines += [f"![{caption}]({path.name})", ""]

    lines += [
        "## What each method is",
        "",
        "* **BCE**: the shared stage-1 (classifier) checkpoint, then the stage-3 number of "
        "epochs of BCE-only training at the stage-3 learning rate. For everything prediction "
        "uses, this is the 3-stage schedule with λ = μ = 0 (stage 2 would only train the "
        "label branch), the definition of `examples/scene_demo.py`.",
        "* **RETDM** (full, one-way α = 0, no-rec μ = 0): `fit_stages` stages 2 and 3 from "
        "the same stage-1 checkpoint of that seed, memory-bank neighbour images, K = 10, "
        "embedding norm 2 (library defaults). On MIML the seed-0 runs of RETDM (and of "
        "RETDM no-rec when μ = 0 is in the grid) are the grid's runs at the chosen point: same "
        "seed, same stage-1 checkpoint, same data stream, so nothing is re-run.",
        "* **Linear probe**: frozen backbone features (MobileNetV2 ImageNet, global average "
        "pool, resize-only images at the same size) or the MULAN features, standardised; one "
        "Dense(C, sigmoid) layer with L2, BCE, Adam; L2 chosen on validation.",
        "* **C2AE** (`retdm_keras.baselines.C2AE`) on the same frozen features: feature "
        "encoder Fx and label encoder Fe (Dense 512 ReLU → Dense latent, latent = C), label "
        "decoder Fd (Dense 512 ReLU → Dense C); loss ‖Fx(x) − Fe(y)‖² + 0.1 · "
        "(‖ZxᵀZx/B − I‖² + ‖ZeᵀZe/B − I‖²) (the canonical-correlation constraint as a "
        "penalty) + α · (pairwise exp ranking loss + BCE) on Fd(Fe(y)); predicts "
        "sigmoid(Fd(Fx(x))); Adam 1e-3, batch 64; α chosen on validation.",
        "* **ML-kNN** (`retdm_keras.baselines.MLkNN`, Zhang & Zhou 2007): k = 10, s = 1, "
        "Euclidean on the frozen features; deterministic, so its std is 0.",
        "* **BR-LR**: scikit-learn's `LogisticRegression` per label (one-vs-rest, lbfgs) on "
        "the same features standardised with the training rows' statistics; C (inverse L2) "
        "from 0.001 to 10 (8 values) chosen by 5-fold cross-validation on the training rows (mean "
        "average precision, tie-break mAP), then refit on all of them; deterministic.",
        "",
    ]
    if quick:
        lines += [
            "## What the full run adds",
            "",
            "`python benchmarks/run.py` (no `--quick`): 160 px and the demo schedule "
            "(4 + 1 + 2 epochs) on MIML with RETDM at the library defaults, 100-epoch "
            "baselines, the recipe schedule (30 + 10 + 30) on MULAN, and cost at 224 px with "
            "more repeats.",
            "",
        ]
    path = result_path(out, "summary", mode, ".md")
    path.write_text("\n".join(lines))
    return path


# ----------------------------------------------------------------------------- README block
README_BEGIN = (
    "<!-- BEGIN benchmark results: generated by benchmarks/run.py from "
    "benchmarks/results/*_full.json (edit benchmarks/bench_report.py, not this block) -->"
)
README_END = "<!-- END benchmark results -->"


def _cost_lines(cost: dict) -> list[str]:
    configs = cost["step_time"]["configs"]
    lines = [
        f"* Train step (MobileNetV2, {cost['step_time']['image_size']} px, batch "
        f"{cost['step_time']['batch_size']}): RETDM with the memory bank "
        f"{configs['retdm_memory_bank']['ratio_to_bce']:.2f}× the BCE step"
        + (
            f'; with `neighbor_images="exact"` {configs["retdm_exact"]["ratio_to_bce"]:.1f}×.'
            if "retdm_exact" in configs
            else "."
        )
    ]
    measured = [m for m in cost["neighbors"]["measured"] if "build_seconds" in m]
    if measured:
        parts = [
            f"{m['samples']:,} samples ({m['unique_sets']:,} distinct sets) "
            f"{m['build_seconds']:.1f} s, +{m['peak_rss_increase_mib']:.0f} MiB"
            for m in measured
        ]
        lines.append(
            f"* `LabelNeighbors` build, 80 labels, K = {cost['neighbors']['k']}: "
            + "; ".join(parts)
            + "."
        )
    for m in cost["neighbors"].get("extrapolated", []):
        lines.append(
            f"* `LabelNeighbors` at {m['samples']:,} samples: not measured, extrapolated "
            f"~{m['build_seconds_low']:.0f}–{m['build_seconds_high']:.0f} s."
        )
    inf = cost.get("inference", {})
    if "predict" in inf:
        p, lat = inf["predict"], inf["latency"]["latency_ms"]
        backends = ", ".join(f"{b} {lat[b]['1']:.1f} ms" for b in lat)
        lines.append(
            f"* Inference ({inf['image_size']} px): `predict` {p['1']['images_per_s']:.0f} "
            f"images/s at batch 1, {p['64']['images_per_s']:.0f} at batch 64, peak RSS "
            f"{inf['peak_rss_after_predict_mib']:.0f} MiB; batch-1 latency {backends}."
        )
    return lines


def readme_block(out: Path, mode: str = "full") -> str:
    """The README's generated results text (markers included) from ``out/*_<mode>.json``."""
    miml = read_json(result_path(out, "miml", mode))
    mulan = read_json(result_path(out, "mulan", mode))
    cost = read_json(result_path(out, "cost", mode))
    frozen = read_json(result_path(out, "frozen", mode))
    lines = [README_BEGIN, ""]
    if not (miml or mulan or cost or frozen):
        lines += [f"No {mode} benchmark results yet: run `make bench`.", "", README_END]
        return "\n".join(lines)
    lines += [f"### Benchmark (`make bench`, {mode} run)", ""]
    lines += targets(miml, cost, frozen) + [""]
    if miml:
        count, _ = wins(miml)
        best = max(
            miml["methods"],
            key=lambda n: miml["methods"][n]["test"]["average_precision"]["mean"],
        )
        lines += [
            f"**MIML scene images**, 400 test images, mean ± std over seeds {miml['seeds']}: "
            f"MobileNetV2 (ImageNet) at {miml['image_size']} px, stages "
            f"{tuple(miml['epochs'])} epochs at learning rates {tuple(miml['learning_rates'])}; "
            f"RETDM λ = {miml['chosen']['lam']}, μ = {miml['chosen']['mu']} "
            + (
                "chosen on the 200 validation images"
                if len(miml["grid"]["points"]) > 1
                else "(the library defaults)"
            )
            + ". Bold: best mean.",
            "",
        ]
        lines += accuracy_table(miml)
        lines += [
            "",
            f"RETDM beats BCE on {count} of the paper's 11 metrics; the best average "
            f"precision is {LABELS.get(best, best).strip('*')}'s.",
            "",
        ]
        lines += calibrated_section(miml)
    if mulan:
        count, _ = wins(mulan)
        lines += [
            f"**MULAN scene features** (scene-test, {mulan['sizes']['test']} instances), "
            f"`mlp` embedder, recipe `scene-features` (λ = {mulan['chosen']['lam']}, μ = "
            f"{mulan['chosen']['mu']}), seeds {mulan['seeds']}:",
            "",
        ]
        lines += accuracy_table(mulan)
        lines += ["", f"RETDM beats BCE on {count} of 11 metrics here.", ""]
        lines += classical_lines(mulan)
    if frozen:
        import bench_report_frozen

        lines += bench_report_frozen.section(frozen, plots="benchmarks/results/", mode=mode)
    if cost or frozen:
        import bench_report_frozen

        lines += ["**Cost**:", ""] + (_cost_lines(cost) if cost else [])
        lines += (bench_report_frozen.cost_lines(frozen) if frozen else []) + [""]
    lines += [
        "Every table, the λ × μ grid, the plots and what each method is: "
        f"[`benchmarks/results/summary_{mode}.md`](benchmarks/results/summary_{mode}.md).",
        "",
        README_END,
    ]
    return "\n".join(lines)


def update_readme(readme: Path, out: Path, mode: str = "full") -> bool:
    """Replace the block between the README markers; True if the file changed."""
    text = readme.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(
            f"{readme}: the results markers are missing; put the lines\n{README_BEGIN}\n"
            f"{README_END}\nwhere the generated results should go"
        )
    new = text[:begin] + readme_block(out, mode) + text[end + len(README_END) :]
    if new != text:
        readme.write_text(new)
    return new != text
