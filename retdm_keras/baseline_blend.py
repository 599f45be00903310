"""Never lose to the tuned baseline: mix it into RETDM with a weight chosen on validation data.

A per-label logistic regression on the features RETDM's image embedder starts from (pooled
backbone features of images, the input vectors for ``"mlp"``), with its ``C`` chosen on
validation data, is the baseline users compare RETDM with, and on some data sets it wins
(see ``docs/method.md``, "The tuned baseline inside the model"). Fitting it takes seconds
on those features, so after the three stages ``fit_stages`` does, on the validation data:

1. fit :class:`~retdm_keras.baselines.BinaryRelevanceLR` on the training rows, choosing
   ``C`` among ``DEFAULT_CS`` by validation average precision (features scaled by max-abs
   when most entries are 0, as sparse binary features are, else standardised);
2. score the mixes ``(1 - β) · p_RETDM + β · p_baseline`` for ``β`` in ``BLEND_WEIGHTS``
   (``β = 0`` is RETDM alone, ``β = 1`` the baseline alone) by validation average precision
   plus mAP, and keep the best (ties: the smaller ``β``);
3. when ``β > 0``, refit the baseline with the chosen ``C`` on training and validation rows
   and store it in the model (``RETDM.set_baseline``): ``predict``, ``evaluate``, saved
   files and exports all use the mix.

The log says what was chosen and why (validation scores of RETDM, the baseline and the mix).

Example:

>>> import numpy as np
>>> from retdm_keras.model import RETDM
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(120, 6)).astype("float32")
>>> y = (x[:, :3] > 0).astype("float32")
>>> model = RETDM(3, backbone="mlp", input_dim=6, embed_dim=8)
>>> blend = fit_baseline_blend(model, x[:80], y[:80], x[80:], y[80:], verbose=0)
>>> blend.weight == model.baseline_weight, blend.weight in BLEND_WEIGHTS
(True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from retdm_keras.baselines.logistic import DEFAULT_CS, BinaryRelevanceLR
from retdm_keras.metrics.evaluation import evaluate

if TYPE_CHECKING:  # pragma: no cover - typing only
    from retdm_keras.model import RETDM

BLEND_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
"""The baseline weights ``β`` tried: 0, 0.1, …, 1."""

DEFAULT_VAL_FRACTION = 0.2
"""The share of the training rows ``retdm-keras train`` holds out to choose the mix when the
data has no validation split."""

MAX_BASELINE_VALUES = 25_000_000
"""The baseline is fit on at most this many training feature values (rows × features; a
seeded subsample of the rows beyond it): 100 MB in float32, a few times that while fitting."""

BASELINE_TOL = 1e-4
"""The baseline's solver tolerance (scikit-learn's ``lbfgs`` default); why not tighter: see
docs/method.md, "The tuned baseline inside the model"."""

SPARSE_ZERO_FRACTION = 0.5
"""Features with more than this fraction of exact zeros are scaled by max-abs, not
standardised (standardising a column that is almost always 0 blows its rare values up)."""

__all__ = [
    "BLEND_WEIGHTS",
    "DEFAULT_VAL_FRACTION",
    "MAX_BASELINE_VALUES",
    "BaselineBlend",
    "baseline_features",
    "baseline_scaling",
    "fit_baseline_blend",
]


@dataclass
class BaselineBlend:
    """What :func:`fit_baseline_blend` chose, and the validation scores behind it.

    Attributes:
        weight: the chosen ``β`` (0: RETDM alone; 1: the baseline alone).
        C: the baseline's inverse regularisation strength, chosen on validation data.
        scaling: the baseline's feature scaling (``"standard"`` or ``"maxabs"``).
        validation: ``{β: {"average_precision": …, "mAP": …}}`` on the validation rows,
            for every ``β`` tried (the baseline fit on the training rows alone).
        train_rows, val_rows: rows the choice was made from.
        refit_rows: rows of the baseline stored in the model (training + validation).
        retdm_rows: rows RETDM's own part was trained on: ``train_rows``, or training +
            validation rows when it was retrained on all of them once ``β`` was chosen
            (``retdm-keras train`` does this when it held the validation rows out itself).
    """

    weight: float
    C: float
    scaling: str
    validation: dict[float, dict[str, float]] = field(default_factory=dict)
    train_rows: int = 0
    val_rows: int = 0
    refit_rows: int = 0
    retdm_rows: int = 0

    def score(self, weight: float) -> dict[str, float]:
        """Validation scores of the mix with baseline weight ``weight``."""
        return self.validation[weight]

    @property
    def chosen(self) -> str:
        """``"RETDM"``, ``"baseline"`` or ``"mix"``: what the model predicts with."""
        if self.weight == 0.0:
            return "RETDM"
        return "baseline" if self.weight == 1.0 else "mix"

    def summary(self) -> str:
        """One line for the training log."""

        def scores(weight: float) -> str:
            s = self.score(weight)
            return f"AP {s['average_precision']:.4f} / mAP {s['mAP']:.4f}"

        described = {
            "RETDM": "RETDM alone (β = 0)",
            "baseline": "the baseline alone (β = 1)",
            "mix": f"the mix β = {self.weight:g}",
        }[self.chosen]
        return (
            f"validation ({self.val_rows} rows): RETDM {scores(0.0)}; tuned logistic "
            f"regression (C = {self.C:g}, {self.scaling} scaling) {scores(1.0)}; "
            f"predicting with {described}: {scores(self.weight)}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (``train_config.json``, zoo metadata)."""
        out = asdict(self)
        out["validation"] = {f"{w:g}": s for w, s in self.validation.items()}
        out["chosen"] = self.chosen
        return out


def baseline_scaling(features: np.ndarray) -> str:
    """``"maxabs"`` for mostly-zero (sparse) features, else ``"standard"``."""
    features = np.asarray(features)
    zeros = float(np.mean(features == 0)) if features.size else 0.0
    return "maxabs" if zeros > SPARSE_ZERO_FRACTION else "standard"


def _ranking_scores(y: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    scores = evaluate(y, probabilities)
    return {"average_precision": scores["average_precision"], "mAP": scores["mAP"]}


def _selection_value(scores: dict[str, float]) -> float:
    """AP + mAP; NaN (no positive anywhere) counts as 0."""
    return float(np.nansum([scores["average_precision"], scores["mAP"]]))


def fit_baseline_blend(
    model: RETDM,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    *,
    retdm_val_probabilities: np.ndarray | None = None,
    weights: tuple[float, ...] = BLEND_WEIGHTS,
    Cs: tuple[float, ...] = DEFAULT_CS,
    verbose: int = 1,
) -> BaselineBlend:
    """Fit the tuned baseline and mix it into ``model`` with ``β`` chosen on validation rows.

    Args:
        model: a trained ``RETDM``; its baseline (if any) is replaced.
        train_features, val_features: what the baseline reads, ``(N, F)``: pooled backbone
            features (``RETDM.backbone_features`` of the plain view) for images, the input
            vectors for ``"mlp"``.
        train_labels, val_labels: multi-hot ``(N, C)``.
        retdm_val_probabilities: RETDM's validation predictions without a baseline, if
            already computed (else predicted from ``val_features``).
        weights: the ``β`` values tried (must include 0 and 1).
        Cs: the baseline's candidate ``C`` values.
        verbose: 1 prints the choice (one line), 0 is silent.

    Returns:
        The :class:`BaselineBlend` chosen (the model now predicts with it).
    """
    if 0.0 not in weights or 1.0 not in weights:
        raise ValueError(f"weights must include 0 and 1 (each model alone), got {weights}")
    x_train = np.asarray(train_features, np.float32)
    x_val = np.asarray(val_features, np.float32)
    y_train = np.asarray(train_labels, np.float32)
    y_val = np.asarray(val_labels, np.float32)
    expected = model.baseline_input_dim
    for name, x in (("train_features", x_train), ("val_features", x_val)):
        if x.ndim != 2 or x.shape[1] != expected:
            raise ValueError(f"{name} must have shape (N, {expected}), got {x.shape}")
    if retdm_val_probabilities is None:
        previous = model.baseline_weight
        model.set_baseline(0.0)
        try:
            retdm_val_probabilities = _predict_features(model, x_val)
        finally:
            model.set_baseline(previous)
    p_retdm = np.asarray(retdm_val_probabilities, np.float64)

    if x_train.size > MAX_BASELINE_VALUES:  # keep the fits in memory: a seeded subsample
        keep = np.sort(
            np.random.default_rng(0).choice(
                len(x_train), MAX_BASELINE_VALUES // x_train.shape[1], replace=False
            )
        )
        if verbose:
            print(
                f"RETDM: the baseline is fit on {len(keep)} of the {len(x_train)} training rows "
                f"(at most {MAX_BASELINE_VALUES:,} feature values)"
            )
        x_train, y_train = x_train[keep], y_train[keep]
    scaling = baseline_scaling(x_train)
    baseline = BinaryRelevanceLR(Cs, scaling=scaling, refit=False, tol=BASELINE_TOL)
    baseline.fit(x_train, y_train, x_val, y_val)
    p_baseline = baseline.predict_proba(x_val)

    validation = {
        float(w): _ranking_scores(y_val, (1.0 - w) * p_retdm + w * p_baseline)
        for w in sorted(weights)
    }
    best = max(validation, key=lambda w: (_selection_value(validation[w]), -w))
    blend = BaselineBlend(
        weight=best,
        C=float(baseline.C_),
        scaling=scaling,
        validation=validation,
        train_rows=len(x_train),
        val_rows=len(x_val),
        retdm_rows=len(train_features),
    )
    if best > 0.0:
        final = BinaryRelevanceLR([baseline.C_], scaling=scaling, tol=BASELINE_TOL)
        final.fit(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
        model.set_baseline(best, final.coef_, final.intercept_, final.mean_, final.scale_)
        blend.refit_rows = len(x_train) + len(x_val)
    else:
        model.set_baseline(0.0)
    if verbose:
        print(f"RETDM: {blend.summary()}")
    return blend


def _predict_features(model: RETDM, features: np.ndarray) -> np.ndarray:
    """The model's probabilities for what the baseline reads (pooled backbone features, or
    the input vectors of ``"mlp"``)."""
    key = "features" if model.backbone == "mlp" else "backbone_features"
    return np.asarray(model.predict({key: features}, verbose=0, batch_size=256))


def baseline_features(model: RETDM, dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` of a dataset of ``(inputs, labels)`` batches, as the baseline
    reads them: the input vectors of ``"mlp"`` (or of a ``"backbone_features"`` batch), and
    the pooled backbone features of raw images (``RETDM.baseline_inputs``)."""
    features, labels = [], []
    for element in dataset:
        x, y = element[0], element[1]
        features.append(np.asarray(model.baseline_inputs(x), np.float32))
        labels.append(np.asarray(y, np.float32))
    if not features:
        raise ValueError("the dataset is empty: no rows to fit the baseline on")
    return np.concatenate(features), np.concatenate(labels)
