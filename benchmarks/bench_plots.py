"""PNG plots from the result JSON files: convergence, lam x mu sensitivity, latency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from bench_common import seed_series, stage_epochs  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

TERMS = (
    ("cls_loss", "L_cls (BCE)"),
    ("metric_loss", "L_metric"),
    ("rec_loss", "L_rec"),
    ("loss", "total L (stage's terms)"),
)
SPLITS = (("", "train"), ("val_", "validation"))


def _boundaries(ax, boundaries: list[float]) -> None:
    for x in boundaries:
        ax.axvline(x, color="grey", linewidth=0.8, linestyle=":")


def convergence(results: dict[str, dict], path: Path, mode: str) -> Path | None:
    """One row per data set: each loss term per epoch across the three stages."""
    rows = [(name, r["convergence"]) for name, r in results.items() if r and "convergence" in r]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), len(TERMS), figsize=(16, 3.4 * len(rows)), squeeze=False)
    for row, (name, conv) in enumerate(rows):
        axis, boundaries = stage_epochs(conv["stages"])
        for col, (key, title) in enumerate(TERMS):
            ax = axes[row][col]
            for _, epochs, history in axis:
                for (prefix, label), style, color in zip(
                    SPLITS, ("-o", "--s"), ("C0", "C1"), strict=True
                ):
                    values = history.get(prefix + key)
                    if values:
                        if any(line.get_label() == label for line in ax.lines):
                            label = "_" + label  # one legend entry per split
                        ax.plot(epochs, values, style, color=color, markersize=3, label=label)
            _boundaries(ax, boundaries)
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlabel("epoch (classifier | metric | joint)", fontsize=8)
            ax.tick_params(labelsize=7)
            if ax.lines:
                ax.legend(fontsize=6)
    fig.suptitle(
        f"RETDM convergence, seed 0, chosen lam/mu ({mode} run); dotted lines = stage boundaries",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FROZEN_VARIANTS = (
    ("retdm", "RETDM", "C0"),
    ("retdm_one_way", "one-way (alpha = 0)", "C2"),
    ("retdm_no_rec", "no rec. (mu = 0)", "C3"),
)


def convergence_frozen(frozen: dict | None, path: Path, mode: str) -> Path | None:
    """The frozen section's metric loss per epoch over stages 2 and 3 (train, validation):
    mean over seeds with a min–max band, for RETDM and its two ablations, and the chance
    level of each (all distances equal) as a dashed line."""
    methods = (frozen or {}).get("methods", {})
    rows = [(n, label, c) for n, label, c in FROZEN_VARIANTS if methods.get(n, {}).get("history")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(12, 4.2), squeeze=False)
    for ax, (prefix, split) in zip(axes[0], SPLITS, strict=True):
        for name, label, color in rows:
            runs = methods[name]["history"]
            values = seed_series(runs, prefix + "metric_loss")
            if values is None:
                continue
            epochs = np.arange(1, values.shape[1] + 1)
            ax.plot(epochs, values.mean(axis=0), "-o", color=color, markersize=3, label=label)
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2)
        chances: dict[float, list[tuple[str, str]]] = {}
        for name, label, color in rows:
            chance = methods[name].get("metric_loss_chance")
            if chance:
                chances.setdefault(round(chance["value"], 6), []).append((label, color))
        for value, owners in chances.items():
            ax.axhline(
                value, linestyle="--", linewidth=1, color=owners[0][1] if len(owners) == 1 else "k",
                label=f"chance {value:.2f} ({', '.join(o[0] for o in owners)})",
            )  # fmt: skip
        _boundaries(ax, stage_epochs(runs[0]["stages"])[1])
        ax.set_title(f"{split} L_metric per epoch", fontsize=9)
        ax.set_xlabel("epoch (metric | joint)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.93))  # under chance
    seeds = frozen.get("seeds", [])
    fig.suptitle(
        f"Frozen MobileNetV2, MIML scene ({mode} run): metric loss, mean over seeds {seeds} "
        "(band: min-max); dotted: stage boundary; dashed: chance (all distances equal)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sensitivity(grid: dict, path: Path, mode: str) -> Path | None:
    """Heat maps of validation average precision and mAP over the lam x mu grid."""
    if not grid or len(grid.get("points") or ()) < 2:
        return None  # no grid (a single point): nothing to map
    points = grid["points"]
    lams = sorted({p["lam"] for p in points})
    mus = sorted({p["mu"] for p in points})
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.4 * len(mus) * 2, 1.2 + 0.9 * len(lams)))
    for ax, metric in zip(axes, ("average_precision", "mAP"), strict=True):
        table = [[None] * len(mus) for _ in lams]
        for p in points:
            table[lams.index(p["lam"])][mus.index(p["mu"])] = p["val"][metric]
        values = [[v if v is not None else float("nan") for v in row] for row in table]
        image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(mus)), [str(m) for m in mus])
        ax.set_yticks(range(len(lams)), [str(lam) for lam in lams])
        ax.set_xlabel("mu (reconstruction weight)")
        ax.set_ylabel("lam (metric weight)")
        ax.set_title(f"val {metric}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"MIML scene, lam x mu on the validation split, seed 0 ({mode} run)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency(cost: dict, path: Path, mode: str) -> Path | None:
    """Median latency per runtime and batch size (bar chart)."""
    lat = (cost or {}).get("inference", {}).get("latency")
    if not lat:
        return None
    backends = list(lat["latency_ms"])
    batches = [str(b) for b in lat["batch_sizes"]]
    fig, axes = plt.subplots(1, len(batches), figsize=(4 * len(batches), 3))
    for ax, batch in zip(axes, batches, strict=True):
        values = [lat["latency_ms"][b][batch] for b in backends]
        ax.bar(backends, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(values)])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(f"batch {batch}: median ms", fontsize=9)
    size = cost["inference"].get("image_size")
    fig.suptitle(f"RETDM MobileNetV2 {size} px inference latency ({mode} run)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
