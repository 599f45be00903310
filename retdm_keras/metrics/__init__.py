"""Multi-label evaluation metrics used in the RETDM paper (Li et al., TNNLS 2020).

The package has three parts:

* :mod:`~retdm_keras.metrics.evaluation` -- the 12 metrics computed exactly in numpy
  (:func:`evaluate`, :func:`per_label_average_precision`, :data:`LOWER_IS_BETTER`); its
  docstring holds the exact definitions (C-P ... O-F1, hamming_loss, the ranking metrics,
  mAP).
* :mod:`~retdm_keras.metrics.table` -- :func:`format_table`, the plain-text table.
* :mod:`~retdm_keras.metrics.streaming` -- :class:`MeanAveragePrecision` and
  :class:`OverallF1`, ``keras.metrics.Metric`` subclasses for ``model.compile``.
"""

from __future__ import annotations

from retdm_keras.metric_names import METRIC_NAMES
from retdm_keras.metrics.evaluation import (
    LOWER_IS_BETTER,
    evaluate,
    per_label_average_precision,
)
from retdm_keras.metrics.streaming import MeanAveragePrecision, OverallF1
from retdm_keras.metrics.table import format_table

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "MeanAveragePrecision",
    "OverallF1",
    "evaluate",
    "format_table",
    "per_label_average_precision",
]
