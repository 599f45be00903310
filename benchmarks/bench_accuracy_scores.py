"""How the accuracy sections score and select: metrics at 0.5 and at per-class thresholds
chosen on val, the validation criterion, and the per-method aggregates over the seeds."""

from __future__ import annotations

from bench_common import aggregate

from retdm_keras.metrics import evaluate
from retdm_keras.thresholds import calibrate

METHODS = (
    "linear_probe",
    "bce",
    "retdm_one_way",
    "retdm",
    "retdm_no_rec",
    "c2ae",
    "mlknn",
    "br_lr",
)
SELECT_BY = ("average_precision", "mAP")  # validation criterion, then tie-break


def selection_score(metrics: dict) -> tuple[float, ...]:
    """The validation criterion of ``metrics``: ``SELECT_BY``'s values, compared in order."""
    return tuple(metrics[k] for k in SELECT_BY)


def score(y_val, p_val, y_test, p_test) -> dict:
    """Val and test metrics at 0.5, and test metrics at per-class thresholds chosen on val.

    ``test_calibrated`` is what ``retdm-keras calibrate --method per_class_f1`` gives a user:
    each label's F1-best threshold on the validation split, applied to the test split.
    """
    thresholds = calibrate(y_val, p_val, "per_class_f1")
    return {
        "val": evaluate(y_val, p_val),
        "test": evaluate(y_test, p_test),
        "test_calibrated": evaluate(y_test, p_test, threshold=list(thresholds.values)),
    }


def summarise(methods: dict[str, dict]) -> dict[str, dict]:
    for entry in methods.values():
        entry["test"] = aggregate(entry["runs"])
        entry["test_calibrated"] = aggregate(entry["runs_calibrated"])
        entry["val_mean"] = aggregate(entry["val"])
    return {name: methods[name] for name in METHODS if name in methods}
