"""Comparison sentences: RETDM against BCE (wins on the paper's metrics, and which exceed
the seed spread) and against the classical baselines, and a target's met / missed status."""

from __future__ import annotations

from bench_common import PAPER_METRICS, better
from bench_report_tables import LABELS

from retdm_keras.metrics import LOWER_IS_BETTER


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
