"""The names of the paper's 11 metrics plus mAP, in the order ``metrics.evaluate`` returns them.

A module of its own, with no TensorFlow or Keras import, so that the command line can list
them (``retdm-keras tune --objective``) without loading TensorFlow.
"""

METRIC_NAMES: tuple[str, ...] = (
    "C-P",
    "C-R",
    "C-F1",
    "O-P",
    "O-R",
    "O-F1",
    "hamming_loss",
    "ranking_loss",
    "one_error",
    "coverage",
    "average_precision",
    "mAP",
)
"""The keys returned by :func:`retdm_keras.metrics.evaluate`, in order."""
