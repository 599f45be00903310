"""``benchmarks/results/summary_<mode>.md``: every table of one mode's result JSON files, the
plots and what each method is."""

from __future__ import annotations

import time
from pathlib import Path

import bench_report_frozen
import bench_report_runtime
from bench_common import read_json, result_path
from bench_report_compare import classical_lines, wins
from bench_report_tables import accuracy_table, calibrated_section, cost_section, grid_table
from bench_report_targets import targets


def _params(result: dict) -> list[str]:
    out = []
    for name, entry in result["methods"].items():
        params = ", ".join(f"{k}={v}" for k, v in entry.get("params", {}).items())
        seconds = sum(entry.get("seconds", [])) / max(1, len(entry.get("seconds", [])))
        out.append(f"`{name}` ({params}; ~{seconds:.0f} s per seed)")
    return out


def write_summary(out: Path, mode: str, settings: dict) -> Path:
    miml = read_json(result_path(out, "miml", mode))
    mulan = read_json(result_path(out, "mulan", mode))
    cost = read_json(result_path(out, "cost", mode))
    frozen = read_json(result_path(out, "frozen", mode))
    runtime = read_json(result_path(out, "runtime", mode))
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

    if frozen:
        lines += bench_report_frozen.section(
            frozen, "## MIML scene images, frozen backbone", mode=mode
        )
    if miml:
        lines += [
            "## MIML scene images, fine-tuned backbone (test split, 400 images)",
            "",
            "`fit_stages(..., freeze_backbone=False)`: the backbone trains with the rest (the "
            "library's default for a pretrained backbone is the frozen mode above). "
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

    if cost or frozen:
        lines += ["## Cost", ""]
        lines += cost_section(cost) if cost else []
        lines += bench_report_frozen.cost_lines(frozen) if frozen else []
        lines += [""]
    if runtime:
        lines += bench_report_runtime.section(runtime)

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
