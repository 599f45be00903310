"""The frozen-backbone part of the summary and of the README block (``frozen_<mode>.json``)."""

from __future__ import annotations

from pathlib import Path

from bench_common import result_path, seed_series
from bench_report_compare import clear_wins, status, wins
from bench_report_tables import LABELS, accuracy_table, mean_std

TARGET_END_TO_END_S = 180.0


def _augmented(frozen: dict) -> int:
    """Augmented passes per training image (results from before ``augmented_views`` was
    recorded had every view augmented)."""
    return frozen["end_to_end"].get("augmented_views", frozen["views"])


def _views(frozen: dict) -> str:
    views, augmented = frozen["views"], _augmented(frozen)
    if augmented == views:
        return f"{views} augmented views"
    return f"{views} views (the plain one and {augmented} augmented)"


def _extracted(frozen: dict) -> str:
    """What went through the backbone per training image."""
    plain = " and the plain view" if _augmented(frozen) == frozen["views"] else ""
    return f"{_views(frozen)}{plain} of each training image"


def targets(frozen: dict) -> list[str]:
    """Issue #14's two rows of the targets table."""
    cold = frozen["end_to_end"]
    seconds = cold["total_seconds"]
    test = {m: frozen["methods"][m]["test"]["average_precision"] for m in ("retdm", "linear_probe")}
    gap = test["linear_probe"]["mean"] - test["retdm"]["mean"]
    over = seconds - TARGET_END_TO_END_S
    return [
        f"| frozen-mode RETDM end to end (cold cache, {frozen['sizes']['train']:,} images, "
        f"{frozen['image_size']} px, {frozen['views']} views) ≤ {TARGET_END_TO_END_S:.0f} s | "
        f"{seconds:.0f} s | {status(over <= 0, f'{over:.0f} s')} |",
        f"| frozen mode: RETDM average precision ≥ linear probe (MIML test) | "
        f"{mean_std(test['retdm'])} vs {mean_std(test['linear_probe'])} | "
        f"{status(gap <= 0, f'{gap:.4f}')} |",
    ]


def cost_lines(frozen: dict) -> list[str]:
    cold, steps = frozen["end_to_end"], frozen["step_time"]
    return [
        f"* Frozen backbone ({frozen['image_size']} px, batch {steps['batch_size']}): feature "
        f"extraction {cold['extraction_images_per_s']:.0f} images/s "
        f"({cold['images_through_backbone']:,} images: {_extracted(frozen)}, and the plain "
        f"validation view, {cold['extraction_seconds']:.0f} s); joint-stage train "
        f"step {steps['frozen']['median_ms']:.1f} ms frozen vs "
        f"{steps['fine_tuning']['median_ms']:.0f} ms fine-tuning "
        f"({steps['speedup']:.0f}× more steps/s); a cold-cache run end to end "
        f"{cold['total_seconds']:.0f} s (training {cold['training_seconds']:.0f} s).",
    ]


ABLATIONS = ("retdm_one_way", "retdm_no_rec")
CONVERGENCE = ("retdm", *ABLATIONS)


def _vs_probe(frozen: dict) -> str:
    """RETDM against the linear probe on average precision and mAP (test means)."""
    parts = []
    for metric in ("average_precision", "mAP"):
        retdm = frozen["methods"]["retdm"]["test"][metric]
        probe = frozen["methods"]["linear_probe"]["test"][metric]
        gap = retdm["mean"] - probe["mean"]
        verdict = "≥, met" if gap >= 0 else f"below by {-gap:.4f}"
        parts.append(f"{metric} {mean_std(retdm)} vs {mean_std(probe)} ({verdict})")
    return "RETDM vs linear probe: " + "; ".join(parts) + "."


def _convergence(frozen: dict, plots: str, mode: str) -> list[str]:
    """First and last epoch (stages 2 + 3) of the mean train metric loss against chance."""
    parts, neighbours = [], None
    for name in CONVERGENCE:
        entry = frozen["methods"].get(name, {})
        values = seed_series(entry.get("history", []), "metric_loss")
        if values is None:
            continue
        mean = values.mean(axis=0)
        chance = entry["metric_loss_chance"]["value"]
        neighbours = entry["metric_loss_chance"]["mean_neighbours"]
        parts.append(
            f"{LABELS[name].strip('*')} {mean[0]:.3f} → {mean[-1]:.3f} (chance {chance:.3f})"
        )
    if not parts:
        return []
    png = result_path(Path(plots), "convergence_frozen", mode, ".png")
    return [
        f"Metric loss (train, mean over the seeds), first epoch of stage 2 → last epoch of "
        f"stage 3: {'; '.join(parts)}. Chance: the loss with all distances equal, "
        f"(1 + α) · log(1 + K) at margin 0 with K = {neighbours:g} neighbours per image; per "
        "epoch, train and "
        f"validation: [`{png.name}`]({png.as_posix()}).",
        "",
    ]


def section(
    frozen: dict, heading: str | None = None, plots: str = "", mode: str = "full"
) -> list[str]:
    """The accuracy table of the frozen mode and what it shows; ``plots``: the folder of the
    ``<name>_<mode>.png`` files relative to the Markdown file (README: ``benchmarks/results/``)."""
    count, won = wins(frozen)
    clear = clear_wins(frozen)
    epochs = " + ".join(str(e) for e in frozen["epochs"])
    ablations = all(name in frozen["methods"] for name in ABLATIONS)
    shared = (
        "BCE and the two ablations (one-way: α = 0; no-rec: μ = 0) start from RETDM's "
        "classifier stage"
        if ablations
        else "BCE shares RETDM's classifier stage"
    )
    lines = [heading, ""] if heading else []
    lines += [
        f"**MIML scene images, frozen backbone** (what `fit_stages` does by default with a "
        f"pretrained backbone, and `make demo`'s configuration: MobileNetV2 "
        f"ImageNet at {frozen['image_size']} px, {_views(frozen)} per "
        f"training image, {epochs} epochs"
        + (" (`fit_stages`' defaults)" if tuple(frozen["epochs"]) == (10, 5, 10) else "")
        + ", λ = μ = 1 and the default learning rates), "
        f"{frozen['sizes']['test']} test images, mean ± std over seeds {frozen['seeds']}. "
        f"{shared}; the probe's L2 "
        f"({frozen['probe_l2']:g}) was chosen on validation. Bold: best mean.",
        "",
    ]
    lines += accuracy_table(frozen)
    gaps = ", ".join(f"{m} ({gap:+.4f}, std {spread:.4f})" for m, gap, spread in clear)
    lines += [
        "",
        f"RETDM beats BCE on {count} of the paper's 11 metrics here ({', '.join(won) or 'none'}); "
        f"on {len(clear)} of them the gap of the means exceeds the larger of the two seed stds"
        + (f": {gaps}." if clear else "."),
        "",
        _vs_probe(frozen),
        "",
    ]
    lines += _convergence(frozen, plots, mode)
    return lines
