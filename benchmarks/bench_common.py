"""Settings, data paths, aggregation and JSON helpers shared by the benchmark sections."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from retdm_keras.metrics import METRIC_NAMES
from retdm_keras.recipes import load_recipe

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# the MULAN section trains exactly what `retdm-keras train --recipe` trains
MULAN_RECIPE = load_recipe("scene-features")  # the built-in recipe
# the paper's 11 metrics: everything `evaluate` returns except mAP
PAPER_METRICS = tuple(name for name in METRIC_NAMES if name != "mAP")


@dataclass(frozen=True)
class Settings:
    """Everything a run depends on; ``quick`` and ``full`` below are the two presets."""

    mode: str
    # --- MIML scene images, fine-tuned MobileNetV2 (ImageNet) ---
    image_size: int
    epochs: tuple[int, int, int]  # classifier, metric, joint
    learning_rates: tuple[float, float, float] = (1e-3, 1e-2, 5e-4)  # the validated demo ones
    batch_size: int = 32
    train_limit: int | None = None  # a seeded random subset of the train split; None = all
    grid_lams: tuple[float, ...] = (0.1, 1.0)
    grid_mus: tuple[float, ...] = (0.1, 1.0)
    # --- baselines on frozen features ---
    probe_l2: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    probe_epochs: int = 100
    c2ae_alphas: tuple[float, ...] = (1.0, 10.0)
    c2ae_epochs: int = 100
    # scikit-learn's C (inverse L2) for BR-LR
    br_lr_cs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0)
    br_lr_folds: int = 5  # C is chosen by k-fold CV on the training rows
    mlknn_k: int = 10
    mlknn_s: float = 1.0
    # --- MULAN scene features, "mlp" backbone: read from recipes/scene-features.yaml ---
    mulan_epochs: tuple[int, int, int] = MULAN_RECIPE.training.epochs
    mulan_learning_rates: tuple[float, float, float] = MULAN_RECIPE.training.learning_rates
    mulan_lam: float = MULAN_RECIPE.model.lam
    mulan_mu: float = MULAN_RECIPE.model.mu
    mulan_linear_skip: bool = MULAN_RECIPE.model.linear_skip
    mulan_val_fraction: float = MULAN_RECIPE.data.get("val_fraction", 0.1)
    # --- MIML scene images, frozen MobileNetV2 (ImageNet): the `make demo` configuration ---
    frozen_image_size: int = 224
    frozen_views: int = 4
    frozen_epochs: tuple[int, int, int] = (10, 5, 10)  # fit_stages' defaults
    frozen_step_repeats: int = 30
    finetune_step_repeats: int = 8
    # --- cost ---
    cost_image_size: int = 224
    step_batch: int = 32
    step_repeats: int = 20
    exact_step_repeats: int = 5
    neighbor_sizes: tuple[int, ...] = (10_000, 30_000, 100_000, 1_000_000)
    neighbor_extrapolate_to: tuple[int, ...] = (1_000_000,)
    neighbor_timeout_s: int = 600
    inference_batch1_images: int = 64
    inference_batch64_images: int = 512
    latency_repeats: int = 30
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)


FULL = Settings(
    mode="full",
    image_size=160,
    epochs=(4, 1, 2),
    # the library defaults, as issue #13 asks ("with default settings"); the 4 x 3 grid of
    # (0.03, 0.1, 0.3, 1.0) x (0.0, 0.1, 1.0) took most of this section's time (its last
    # results: benchmarks/results/miml_full.json before 2026-11-30)
    grid_lams=(1.0,),
    grid_mus=(1.0,),
    notes=(
        "Frozen backbone (fit_stages' default with pretrained weights): 224 px, 4 views, "
        "fit_stages' defaults (10 + 5 + 10 epochs, lam = mu = 1).",
        "MIML fine-tuned (freeze_backbone=False): 160 px, all 1,400 training images, the "
        "fine-tuning demo's schedule (4 + 1 + 2 epochs).",
        "RETDM at the library defaults lam = mu = 1 (no grid).",
    ),
)

QUICK = Settings(
    mode="quick",
    image_size=96,
    epochs=(2, 1, 1),
    grid_lams=(0.1, 1.0),
    grid_mus=(0.1, 1.0),
    probe_epochs=50,
    c2ae_epochs=50,
    mulan_epochs=(10, 3, 10),
    frozen_image_size=96,
    frozen_views=2,
    frozen_epochs=(3, 2, 3),
    frozen_step_repeats=10,
    finetune_step_repeats=3,
    cost_image_size=96,
    step_repeats=5,
    exact_step_repeats=3,
    neighbor_sizes=(10_000, 100_000, 1_000_000),
    neighbor_timeout_s=300,
    inference_batch1_images=32,
    inference_batch64_images=256,
    latency_repeats=10,
    notes=(
        "QUICK MODE: a smoke-sized run, not comparable with the targets or the paper.",
        "MIML: 96 px instead of 160, 2 + 1 + 1 epochs instead of 4 + 1 + 2; all 1,400 "
        "training images, the full 200 val / 400 test images.",
        "lam x mu grid 2 x 2 instead of 4 x 3; baselines 50 epochs instead of 100.",
        "MULAN: 10 + 3 + 10 epochs instead of 30 + 10 + 30.",
        "Frozen backbone: 96 px, 2 views, 3 + 2 + 3 epochs instead of 224 px, 4 views, "
        "10 + 5 + 10.",
        "Cost: 96 px instead of 224, fewer repeats.",
    ),
)


def data_dir() -> Path:
    """``$RETDM_DATA_DIR``, else ``<repo>/../shared/data``."""
    return Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))


def configure_environment(data: Path) -> None:
    """Offline ImageNet weights and a quiet TensorFlow; call before Keras is imported.

    ``KERAS_HOME`` (unless set) is ``runs/keras_home`` with ``models`` linked to the shared
    weights, so what the library caches there (converted backbones, the zoo) stays out of the
    shared data.
    """
    models = data / "keras_home" / "models"
    if "KERAS_HOME" not in os.environ and models.is_dir():
        keras_home = Path(__file__).resolve().parents[1] / "runs" / "keras_home"
        keras_home.mkdir(parents=True, exist_ok=True)
        if not (keras_home / "models").exists():
            (keras_home / "models").symlink_to(models, target_is_directory=True)
        os.environ["KERAS_HOME"] = str(keras_home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "nice": os.nice(0),
    }
    try:
        import keras
        import tensorflow as tf

        info.update(keras=keras.__version__, tensorflow=tf.__version__)
    except ImportError:  # pragma: no cover
        pass
    return info


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- numbers
def aggregate(runs: list[dict[str, float]]) -> dict[str, dict]:
    """``{metric: {"mean", "std", "values"}}`` over runs; std is the sample std (ddof 1)."""
    out = {}
    for metric in runs[0]:
        values = np.array([r[metric] for r in runs], dtype=np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[metric] = {"mean": float(values.mean()), "std": std, "values": values.tolist()}
    return out


def better(metric: str, a: float, b: float, lower_is_better: frozenset[str]) -> bool:
    """``a`` strictly better than ``b`` for ``metric``."""
    return a < b if metric in lower_is_better else a > b


def clean(obj):
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(payload), indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def result_path(out: Path, name: str, mode: str, suffix: str = ".json") -> Path:
    """``<out>/<name>_<mode><suffix>``: quick and full results never overwrite each other."""
    return out / f"{name}_{mode}{suffix}"


def history_lists(histories: dict) -> dict[str, dict[str, list[float]]]:
    """``{stage: {key: [per-epoch values]}}`` from ``fit_stages``' ``{stage: History}``."""
    return {
        stage: {k: [float(v) for v in values] for k, values in h.history.items()}
        for stage, h in histories.items()
    }


# ----------------------------------------------------------------------------- histories
STAGES = ("classifier", "metric", "joint")  # fit_stages' order


def stage_epochs(stages: dict[str, dict[str, list[float]]]) -> tuple[list, list[float]]:
    """One epoch axis across the stages of a ``history_lists`` result.

    Returns ``[(stage, [epoch numbers], {key: values})]`` for the stages present, in
    ``fit_stages``' order and numbered on from 1, and the x positions of the boundaries
    between stages (half-way between two epochs).
    """
    axis, boundaries, start = [], [], 0
    for stage in (s for s in STAGES if s in stages):
        history = stages[stage]
        length = len(next(iter(history.values()), []))
        if start:
            boundaries.append(start + 0.5)
        axis.append((stage, list(range(start + 1, start + length + 1)), history))
        start += length
    return axis, boundaries


def stage_series(stages: dict[str, dict[str, list[float]]], key: str) -> list[float] | None:
    """``key``'s per-epoch values over all the stages, concatenated; None if a stage lacks it."""
    values: list[float] = []
    for _, _, history in stage_epochs(stages)[0]:
        if key not in history:
            return None
        values += history[key]
    return values


def seed_series(runs: list[dict], key: str) -> np.ndarray | None:
    """``(seeds, epochs)``: ``stage_series`` of each run's ``"stages"``; None if one lacks it."""
    series = [stage_series(run["stages"], key) for run in runs]
    if not series or any(s is None for s in series) or len({len(s) for s in series}) != 1:
        return None
    return np.array(series, dtype=np.float64)
