"""The frozen-backbone part of the summary and of the README block (``frozen_<mode>.json``)."""

from __future__ import annotations

from bench_report import accuracy_table, mean_std, status, wins

TARGET_END_TO_END_S = 180.0


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
        f"({cold['images_through_backbone']:,} images: {frozen['views']} views of each training "
        f"image plus the plain views, {cold['extraction_seconds']:.0f} s); joint-stage train "
        f"step {steps['frozen']['median_ms']:.1f} ms frozen vs "
        f"{steps['fine_tuning']['median_ms']:.0f} ms fine-tuning "
        f"({steps['speedup']:.0f}× more steps/s); a cold-cache run end to end "
        f"{cold['total_seconds']:.0f} s (training {cold['training_seconds']:.0f} s).",
    ]


def section(frozen: dict, heading: str | None = None) -> list[str]:
    """The accuracy table of the frozen mode and one line on what it shows."""
    count, won = wins(frozen)
    epochs = " + ".join(str(e) for e in frozen["epochs"])
    lines = [heading, ""] if heading else []
    lines += [
        f"**MIML scene images, frozen backbone** (`make demo`'s configuration: MobileNetV2 "
        f"ImageNet at {frozen['image_size']} px, {frozen['views']} augmented views per "
        f"training image, {epochs} epochs"
        + (" (`fit_stages`' defaults)" if tuple(frozen["epochs"]) == (10, 5, 10) else "")
        + ", λ = μ = 1 and the default learning rates), "
        f"{frozen['sizes']['test']} test images, mean ± std over seeds {frozen['seeds']}. BCE "
        "shares RETDM's classifier stage; the probe's L2 "
        f"({frozen['probe_l2']:g}) was chosen on validation. Bold: best mean.",
        "",
    ]
    lines += accuracy_table(frozen)
    lines += ["", f"RETDM beats BCE on {count} of the paper's 11 metrics here.", ""]
    return lines
