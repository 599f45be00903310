"""Feature vectors with multi-hot labels in memory: :class:`FeatureSet` and its dataset.

:class:`FeatureSet` is what :func:`~retdm_keras.data.arff.load_arff` returns;
:func:`feature_dataset` turns ``(N, F)`` features and ``(N, C)`` labels into a batched
``({"features", "index"}, labels)`` ``tf.data.Dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["FeatureSet", "check_multi_hot", "feature_dataset"]


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Feature vectors with multi-hot labels.

    Attributes:
        features: ``(N, F)`` float32.
        labels: ``(N, C)`` float32 in {0, 1}; row ``i`` belongs to ``features[i]``.
        feature_names: the ``F`` feature attribute names.
        label_names: the ``C`` label names, in column order.
    """

    features: np.ndarray
    labels: np.ndarray
    feature_names: list[str]
    label_names: list[str]

    def __post_init__(self) -> None:
        features = np.asarray(self.features, np.float32)
        labels = np.asarray(self.labels, np.float32)
        if features.ndim != 2 or labels.ndim != 2 or len(features) != len(labels):
            raise ValueError(
                f"features (N, F) and labels (N, C) must agree: {features.shape} vs {labels.shape}"
            )
        if features.shape[1] != len(self.feature_names) or labels.shape[1] != len(self.label_names):
            raise ValueError("feature_names/label_names do not match the array widths")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "feature_names", list(self.feature_names))
        object.__setattr__(self, "label_names", list(self.label_names))

    def __len__(self) -> int:
        return len(self.features)

    @property
    def num_features(self) -> int:
        """Number of feature columns ``F``."""
        return self.features.shape[1]

    @property
    def num_labels(self) -> int:
        """Number of label columns ``C``."""
        return self.labels.shape[1]


def check_multi_hot(
    labels: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    row_word: str = "row",
    label_names: list[str] | None = None,
) -> None:
    """Raise ``ValueError`` unless every value of the ``(N, C)`` ``labels`` is 0 or 1 (NaN
    included), naming the first offender: its row (``rows[i]`` when given, called
    ``row_word``) and its column, by name when ``label_names`` are given."""
    bad = np.argwhere((labels != 0.0) & (labels != 1.0))
    if bad.size:
        row, column = bad[0]
        where = f"{row_word} {row if rows is None else rows[row]}, "
        where += f"label {label_names[column]!r}" if label_names else f"column {column}"
        raise ValueError(
            f"labels must be 0 or 1 (multi-hot; soft labels are not supported): {where} is "
            f"{float(labels[row, column])!r} ({len(bad)} such value(s))"
        )


def feature_dataset(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 32,
    training: bool = False,
    shuffle: bool | None = None,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batched ``({"features", "index"}, labels)`` dataset over in-memory arrays.

    Args:
        features: ``(N, F)`` array (cast to float32).
        labels: ``(N, C)`` multi-hot array of 0s and 1s (cast to float32).
        batch_size: samples per batch.
        training: default for ``shuffle``.
        shuffle: reshuffle every epoch; default ``training``.
        seed: makes the shuffle order reproducible.
        drop_remainder: drop the last incomplete batch.

    ``index`` is the row of ``features``/``labels`` each sample came from.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels, np.float32)
    if features.ndim != 2 or labels.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            f"features (N, F) and labels (N, C) must agree: {features.shape} vs {labels.shape}"
        )
    if len(features) == 0:
        raise ValueError("no samples")
    check_multi_hot(labels)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shuffle = training if shuffle is None else shuffle
    n = len(features)
    ds = tf.data.Dataset.from_tensor_slices(
        ({"features": features, "index": np.arange(n, dtype=np.int64)}, labels)
    )
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
