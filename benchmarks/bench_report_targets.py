"""The targets table (issues #3 and #14): each target, what was measured, met or missed."""

from __future__ import annotations

import bench_report_frozen
from bench_report_compare import status, wins
from bench_report_tables import mean_std

TARGET_AP, TARGET_OF1, TARGET_WINS, TARGET_RATIO, TARGET_NEIGHBOURS_S = 0.955, 0.90, 8, 1.3, 10.0


def accuracy_targets(result: dict, where: str) -> list[str]:
    """The long-run accuracy targets (average precision, O-F1) and RETDM's wins over BCE,
    for one MIML result (``where`` names it in the rows)."""
    retdm = result["methods"]["retdm"]
    ap, of1 = retdm["test"]["average_precision"], retdm["test"]["O-F1"]
    ap_gap, of1_gap = TARGET_AP - ap["mean"], TARGET_OF1 - of1["mean"]
    lines = [
        f"| RETDM average precision ≥ {TARGET_AP} ({where}) | {mean_std(ap)} | "
        f"{status(ap_gap <= 0, f'{ap_gap:.4f}')} |",
        f"| RETDM O-F1 ≥ {TARGET_OF1} ({where}) | {mean_std(of1)} | "
        f"{status(of1_gap <= 0, f'{of1_gap:.4f}')} |",
    ]
    calibrated = retdm.get("test_calibrated")
    if calibrated:
        gap = TARGET_OF1 - calibrated["O-F1"]["mean"]
        lines.append(
            f"| (for reference) RETDM O-F1 at per-class thresholds chosen on val ({where}) | "
            f"{mean_std(calibrated['O-F1'])} | {status(gap <= 0, f'{gap:.4f}')} |"
        )
    count, won = wins(result)
    lines.append(
        f"| RETDM better than BCE on ≥ {TARGET_WINS} of 11 metrics ({where}, means) | "
        f"{count} of 11 ({', '.join(won) or 'none'}) | "
        f"{status(count >= TARGET_WINS, f'{TARGET_WINS - count} metrics')} |"
    )
    return lines


def targets(miml: dict | None, cost: dict | None, frozen: dict | None = None) -> list[str]:
    """The targets table. The frozen-backbone result is what the library's defaults train
    (``fit_stages`` freezes a pretrained backbone unless told otherwise); the fine-tuned
    one (``freeze_backbone=False``) is reported beside it."""
    lines = ["| target | measured | status |", "|---|---|---|"]
    if frozen:
        lines += bench_report_frozen.targets(frozen)
        lines += accuracy_targets(frozen, "MIML test, defaults: frozen backbone")
    if miml:
        lines += accuracy_targets(miml, "MIML test, fine-tuned")
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
