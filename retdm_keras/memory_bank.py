"""A memory bank of the latest image embedding of every training sample.

The second way of the metric loss compares a label embedding ``v_i`` with images ``x_jk``
that carry the neighbour label sets ``y_k``. Forwarding ``K`` extra images per sample through
the backbone would multiply the cost of a step by up to ``K + 1``; instead RETDM-Keras reads
``u_jk`` from this bank, which holds the most recent ``f(x_j)`` of every training image:

* filled by one pass over the training set at the start of the ``metric`` and ``joint`` stages,
* refreshed with the batch's embeddings after every training step.

With ``f`` frozen (the ``metric`` stage) the bank is exact; in the ``joint`` stage an entry is
at most one epoch old, the usual memory-bank trade-off (Wu et al. 2018; He et al. 2020).
``RETDM(neighbor_images="exact")`` forwards the neighbour images instead.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["MemoryBank"]


class MemoryBank:
    """``(num_samples, embed_dim)`` non-trainable store of image embeddings.

    Deliberately not a Keras layer or weight: it is training state tied to one training set,
    so it is neither saved with the model nor exported.

    Args:
        num_samples: number of training samples ``N``.
        embed_dim: embedding size ``D``.
    """

    def __init__(self, num_samples: int, embed_dim: int):
        self.num_samples = int(num_samples)
        self.embed_dim = int(embed_dim)
        self.embeddings = tf.Variable(
            tf.zeros((self.num_samples, self.embed_dim)),
            trainable=False,
            name="memory_bank",
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.filled = tf.Variable(
            tf.zeros((self.num_samples,), dtype=tf.bool),
            trainable=False,
            name="memory_bank_filled",
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def gather(self, indices):
        """Embeddings of the given samples, same leading shape as ``indices``."""
        return tf.gather(self.embeddings, indices)

    def update(self, indices, values) -> None:
        """Write ``values`` (B, D) at ``indices`` (B,); gradients never flow into the bank.

        Under a ``tf.distribute`` strategy each replica sees only its share of the batch: the
        shares are all-gathered first, so every replica writes the same complete update (the
        variables aggregate with ``ONLY_FIRST_REPLICA``, which is then exact).
        """
        indices = tf.reshape(tf.cast(indices, tf.int64), (-1,))
        values = tf.stop_gradient(tf.cast(values, self.embeddings.dtype))
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            indices = context.all_gather(indices, axis=0)
            values = context.all_gather(values, axis=0)
        self.embeddings.scatter_update(tf.IndexedSlices(values, indices))
        written = tf.ones(tf.shape(indices), dtype=tf.bool)
        self.filled.scatter_update(tf.IndexedSlices(written, indices))

    @property
    def fraction_filled(self) -> float:
        """Share of the samples written at least once."""
        return float(np.mean(self.filled.numpy()))
