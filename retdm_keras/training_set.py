"""What RETDM's metric loss needs to know about the training set, kept apart from the model.

The two-way loss compares each image with the ``K`` nearest *other* label sets of the
training set and with images that carry those sets. ``RETDM.prepare_training`` makes one pass
over the training data (sample index, labels, and ``f`` of every image) and hands it to
:meth:`TrainingSet.from_pass`, which checks the pass, builds the :class:`LabelNeighbors`
index and fills the :class:`MemoryBank`. The training step then asks the ``TrainingSet`` for

* the neighbour set ids and mask of a batch (:meth:`TrainingSet.neighbours`: a lookup for
  training samples, an on-the-fly Hamming search for samples without an index), and
* one random training sample carrying each neighbour set (:meth:`TrainingSet.draw_members`),
  whose embedding comes from the memory bank or, with ``neighbor_images="exact"``, from the
  stored inputs (:attr:`TrainingSet.inputs`).

None of this is saved with the model: it belongs to one training set, not to the weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from retdm_keras.data.features import check_multi_hot
from retdm_keras.memory_bank import MemoryBank
from retdm_keras.neighbors import LabelNeighbors

__all__ = ["TrainingSet", "as_dataset", "declared_batch_size"]


@dataclass
class TrainingSet:
    """Neighbour index, memory bank and their lookup tables as tensors.

    Attributes:
        neighbors: the :class:`LabelNeighbors` index of the training labels.
        bank: one embedding per training sample (updated by the training step).
        set_index, unique_sets, neighbor_sets, neighbor_mask, member_offsets,
            member_indices: ``neighbors``' arrays as constant tensors (for graph mode).
        inputs: the training inputs by sample index (``neighbor_images="exact"``), else None.
    """

    neighbors: LabelNeighbors
    bank: MemoryBank
    set_index: tf.Tensor
    unique_sets: tf.Tensor
    neighbor_sets: tf.Tensor
    neighbor_mask: tf.Tensor
    member_offsets: tf.Tensor
    member_indices: tf.Tensor
    inputs: tf.Tensor | None

    @classmethod
    def from_pass(
        cls,
        indices: list[np.ndarray],
        labels: list[np.ndarray],
        embeddings: list[tf.Tensor],
        inputs: list[np.ndarray] | None,
        *,
        num_labels: int,
        num_neighbors: int,
        embed_dim: int,
        label_names: list[str] | None = None,
        declared_batch: int | None = None,
        tie_break: int | np.random.Generator | None = None,
    ) -> TrainingSet:
        """Check one pass over the training data (per batch) and build the state from it.

        Warns (``UserWarning``) about a single distinct label set, labels never positive and
        a batch size larger than the data set; see ``RETDM.prepare_training``.

        Raises:
            ValueError: no batches, indices that are not ``0..N-1``, labels whose width
                is not ``num_labels``, or labels other than 0 and 1.
        """
        if not indices:
            hint = ""
            if declared_batch is not None:
                hint = (
                    f" (batch size {declared_batch}: with drop_remainder=True a batch size "
                    "larger than the data set leaves no batch)"
                )
            raise ValueError(f"the training data is empty{hint}")
        index = np.concatenate(indices).astype(np.int64)
        num_samples = int(index.max()) + 1
        if index.min() < 0 or len(np.unique(index)) != len(index) or len(index) != num_samples:
            raise ValueError(
                f"sample indices must be 0..N-1, each exactly once per pass; got {len(index)} "
                f"samples with {len(np.unique(index))} distinct indices in "
                f"[{index.min()}, {index.max()}]"
            )
        y_batches = np.concatenate(labels)
        if y_batches.ndim != 2 or y_batches.shape[1] != num_labels:
            raise ValueError(
                f"labels have shape {y_batches.shape[1:]} per sample, but the model has "
                f"num_labels={num_labels}"
            )
        check_multi_hot(y_batches, rows=index, row_word="sample", label_names=label_names)
        y_all = np.zeros((num_samples, num_labels), np.float32)
        y_all[index] = y_batches
        neighbors = LabelNeighbors(y_all, num_neighbors, tie_break=tie_break)
        _warn_if_degenerate(neighbors, y_all, label_names, declared_batch)

        bank = MemoryBank(num_samples, embed_dim)
        bank.update(index, tf.concat(embeddings, axis=0))
        stored_inputs = None
        if inputs is not None:
            all_inputs = np.concatenate(inputs)
            stored = np.zeros((num_samples, *all_inputs.shape[1:]), all_inputs.dtype)
            stored[index] = all_inputs
            stored_inputs = tf.constant(stored)
        return cls(
            neighbors=neighbors,
            bank=bank,
            set_index=tf.constant(neighbors.set_index),
            unique_sets=tf.constant(neighbors.unique_sets),
            # a variable: redraw_ties changes it between epochs without retracing the step
            neighbor_sets=tf.Variable(
                neighbors.neighbor_sets, trainable=False, name="neighbor_sets"
            ),
            neighbor_mask=tf.constant(neighbors.neighbor_mask),
            member_offsets=tf.constant(neighbors.member_offsets),
            member_indices=tf.constant(neighbors.member_indices),
            inputs=stored_inputs,
        )

    def neighbours(self, y, index, num_neighbors: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Neighbour set ids ``(B, K)`` and mask ``(B, K)`` of a batch.

        Training samples (``index`` given) look theirs up in the precomputed index; samples
        without an index (validation) are matched against the training label sets on the
        fly, with the index's rule: nearest by Hamming distance, ties by set order, never the
        sample's own set.
        """
        if index is not None:
            sets = tf.gather(self.set_index, index)
            return tf.gather(self.neighbor_sets, sets), tf.gather(self.neighbor_mask, sets)
        num_sets = self.neighbors.num_sets
        k_real = min(num_neighbors, num_sets)
        y = tf.cast(y > 0.5, tf.float32)
        hamming = (
            tf.reduce_sum(y, axis=1, keepdims=True)
            + tf.reduce_sum(self.unique_sets, axis=1)[None, :]
            - 2.0 * tf.matmul(y, self.unique_sets, transpose_b=True)
        )
        hamming = tf.cast(tf.round(hamming), tf.float64)
        key = hamming * num_sets + tf.range(num_sets, dtype=tf.float64)[None, :]
        excluded = tf.constant(np.finfo(np.float64).max, tf.float64)
        key = tf.where(hamming == 0.0, excluded, key)  # never the sample's own set
        neg_key, ids = tf.math.top_k(-key, k=k_real)
        mask = tf.cast(-neg_key < excluded, tf.float32)
        pad = num_neighbors - k_real
        return tf.pad(ids, [[0, 0], [0, pad]]), tf.pad(mask, [[0, 0], [0, pad]])

    def redraw_ties(self, rng: int | np.random.Generator | None = None) -> None:
        """Break neighbour-distance ties in a new random order (see ``LabelNeighbors``)."""
        self.neighbor_sets.assign(self.neighbors.redraw_ties(rng))

    def draw_members(self, set_ids) -> tf.Tensor:
        """One random training sample index carrying each set (same shape as ``set_ids``)."""
        starts = tf.gather(self.member_offsets, set_ids)
        counts = tf.gather(self.member_offsets, set_ids + 1) - starts
        draw = tf.random.uniform(tf.shape(set_ids), dtype=tf.float64)
        offsets = tf.minimum(tf.cast(draw * tf.cast(counts, tf.float64), tf.int64), counts - 1)
        return tf.gather(self.member_indices, starts + offsets)


def _warn_if_degenerate(neighbors, y_all, label_names, declared_batch) -> None:
    """One warning per degenerate property of the training set; training still runs."""
    num_samples, num_labels = y_all.shape
    stacklevel = 4  # the caller of RETDM.prepare_training
    if neighbors.num_sets == 1:
        warnings.warn(
            "the training set has a single distinct label set: no neighbour label sets "
            "exist, so the metric loss is 0 (masked) and predictions use the classifier "
            "alone",
            stacklevel=stacklevel,
        )
    never = np.flatnonzero(~(y_all > 0.5).any(axis=0))
    if never.size:
        names = label_names or [str(j) for j in range(num_labels)]
        shown = ", ".join(repr(names[j]) for j in never[:20])
        warnings.warn(
            f"{never.size} of {num_labels} label(s) are never positive in the "
            f"training set ({num_samples} samples): {shown}"
            f"{', ...' if never.size > 20 else ''}; the classifier only sees them as "
            "negatives",
            stacklevel=stacklevel,
        )
    if declared_batch is not None and declared_batch > num_samples:
        warnings.warn(
            f"batch size {declared_batch} is larger than the training set "
            f"({num_samples} samples): one step per epoch, each over the whole set",
            stacklevel=stacklevel,
        )


def declared_batch_size(data) -> int | None:
    """The batch size of a batched ``tf.data.Dataset`` (its last ``batch`` step), else None.

    Array inputs give None: ``prepare_training``'s own ``batch_size`` only batches the
    memory-bank pass, it says nothing about the training batches.
    """
    if not isinstance(data, tf.data.Dataset):
        return None
    node = data
    for _ in range(64):  # walk map/prefetch/... back to the batch step
        size = getattr(node, "_batch_size", None)
        if size is not None:
            value = tf.get_static_value(size)
            return None if value is None or int(value) < 1 else int(value)
        node = getattr(node, "_input_dataset", None)
        if node is None:
            return None
    return None


def as_dataset(data, labels, batch_size: int) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(x, y)`` from a dataset or from arrays."""
    if isinstance(data, tf.data.Dataset):
        return data
    if labels is None:
        raise ValueError("pass labels with array inputs, or a dataset of (x, y) batches")
    return tf.data.Dataset.from_tensor_slices((data, labels)).batch(batch_size)
