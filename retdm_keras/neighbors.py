"""Nearest *other* label sets of a training set, by Hamming distance.

RETDM contrasts every image with the label sets that are closest to, but different from, its
own. Many samples share a label set (MIML scene: 1,400 images, 20 sets; COCO: ~80k images,
tens of thousands of sets), so the index works on the **unique** label sets:

1. ``unique_sets`` (U, C): the distinct label sets, ordered lexicographically (so the index is
   the same for any order of the samples); ``set_index`` (N,) maps each sample to its set.
2. For every unique set, its ``K`` nearest *other* unique sets by Hamming distance
   ``h(a, b) = |a| + |b| - 2 a·b``, computed with blocked matrix products (a block of rows
   against all U sets at a time, so memory is ``block × U``, never ``N × N``). Ties are broken
   by the lower set index. Where fewer than ``K`` other sets exist, the rest are padding with
   ``neighbor_mask == 0``.
3. ``member_offsets`` / ``member_indices`` (CSR layout): the samples that carry each set, used
   to draw a training image ``x_jk`` for each neighbour set ``y_k``.

Example:

>>> import numpy as np
>>> y = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]])
>>> index = LabelNeighbors(y, num_neighbors=2)
>>> index.unique_sets.tolist()
[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
>>> index.neighbor_sets[1].tolist(), index.neighbor_mask[1].tolist()
([2, 0], [1.0, 1.0])
"""

from __future__ import annotations

import numpy as np

__all__ = ["LabelNeighbors"]


class LabelNeighbors:
    """Index of the ``num_neighbors`` nearest distinct label sets of each training sample.

    Args:
        labels: ``(N, C)`` multi-hot training labels (anything > 0.5 counts as positive).
        num_neighbors: ``K``, neighbours per label set.
        max_block_elements: memory budget of one distance block (rows × U entries).

    Attributes:
        unique_sets: ``(U, C)`` float32 distinct label sets.
        set_index: ``(N,)`` int32, the unique set of each sample.
        neighbor_sets: ``(U, K)`` int32 indices into ``unique_sets`` (0 where padded).
        neighbor_mask: ``(U, K)`` float32, 1 for a real neighbour, 0 for padding.
        neighbor_distances: ``(U, K)`` int32 Hamming distances (-1 where padded).
        member_offsets: ``(U + 1,)`` int64; samples of set ``s`` are
            ``member_indices[member_offsets[s]:member_offsets[s + 1]]``.
        member_indices: ``(N,)`` int32 sample indices grouped by set.
    """

    def __init__(self, labels, num_neighbors: int = 10, max_block_elements: int = 1 << 24):
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise ValueError(
                f"labels must be a 2-D (samples, labels) array, got shape {labels.shape}"
            )
        if labels.shape[0] == 0:
            raise ValueError("labels is empty: the training set has no samples")
        if num_neighbors < 1:
            raise ValueError(f"num_neighbors must be >= 1, got {num_neighbors}")
        self.num_neighbors = int(num_neighbors)
        self.num_labels = int(labels.shape[1])
        binary = labels > 0.5

        # 1. Unique sets: pack each row into bytes so np.unique compares short byte strings.
        packed = np.packbits(binary, axis=1)
        keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        unique_bin = binary[first]
        # Lexicographic order of the 0/1 rows (np.unique on packed bytes already gives it,
        # since packbits is big-endian within each byte); keep it explicit and cheap.
        self.unique_sets = unique_bin.astype(np.float32)
        self.set_index = inverse.reshape(-1).astype(np.int32)

        # 2. K nearest other sets, block by block.
        self.neighbor_sets, self.neighbor_distances = self._nearest_other_sets(
            unique_bin, self.num_neighbors, max_block_elements
        )
        self.neighbor_mask = (self.neighbor_distances >= 0).astype(np.float32)

        # 3. Members of each set (CSR).
        counts = np.bincount(self.set_index, minlength=self.num_sets)
        self.member_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.member_indices = np.argsort(self.set_index, kind="stable").astype(np.int32)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _nearest_other_sets(unique_bin: np.ndarray, k: int, max_block_elements: int):
        num_sets = unique_bin.shape[0]
        sets = unique_bin.astype(np.float32)
        sizes = sets.sum(axis=1)
        k_real = min(k, num_sets - 1)
        neighbors = np.zeros((num_sets, k), dtype=np.int32)
        distances = np.full((num_sets, k), -1, dtype=np.int32)
        if k_real == 0:
            return neighbors, distances
        rows_per_block = max(1, min(num_sets, max_block_elements // num_sets))
        excluded = np.int16(sets.shape[1] + 1)  # larger than any Hamming distance
        for start in range(0, num_sets, rows_per_block):
            stop = min(num_sets, start + rows_per_block)
            rows = np.arange(stop - start)
            # Hamming distance between 0/1 vectors; exact in float32 for C < 2**24.
            hamming = sizes[start:stop, None] + sizes[None, :] - 2.0 * (sets[start:stop] @ sets.T)
            hamming = np.rint(hamming).astype(np.int16)
            hamming[rows, rows + start] = excluded  # never pick the own set
            # The K-th smallest distance of each row; every set at most that far is a
            # candidate (ties included), then candidates are ordered by (distance, index).
            kth = np.partition(hamming, k_real - 1, axis=1)[:, k_real - 1]
            cand_rows, cand_cols = np.nonzero(hamming <= kth[:, None])
            cand_dist = hamming[cand_rows, cand_cols]
            order = np.lexsort((cand_cols, cand_dist, cand_rows))
            first = np.searchsorted(cand_rows[order], rows)  # each row's first candidate
            take = order[first[:, None] + np.arange(k_real)[None, :]]
            neighbors[start:stop, :k_real] = cand_cols[take]
            distances[start:stop, :k_real] = cand_dist[take]
        return neighbors, distances

    # ------------------------------------------------------------------ queries
    @property
    def num_sets(self) -> int:
        """Number of distinct label sets ``U``."""
        return int(self.unique_sets.shape[0])

    @property
    def num_samples(self) -> int:
        """Number of training samples ``N``."""
        return int(self.set_index.shape[0])

    def for_samples(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbour label sets of the given samples.

        Returns:
            ``(neighbor_labels (B, K, C), neighbor_set_ids (B, K), mask (B, K))``.
        """
        sets = self.set_index[np.asarray(indices)]
        ids = self.neighbor_sets[sets]
        return self.unique_sets[ids], ids, self.neighbor_mask[sets]

    def sample_members(self, set_ids, rng: np.random.Generator | None = None) -> np.ndarray:
        """One random training sample carrying each given set (same shape as ``set_ids``)."""
        rng = rng or np.random.default_rng()
        set_ids = np.asarray(set_ids)
        starts = self.member_offsets[set_ids]
        counts = self.member_offsets[set_ids + 1] - starts
        picks = starts + (rng.random(set_ids.shape) * counts).astype(np.int64)
        return self.member_indices[picks]

    def __repr__(self) -> str:
        return (
            f"LabelNeighbors(samples={self.num_samples}, labels={self.num_labels}, "
            f"unique_sets={self.num_sets}, K={self.num_neighbors})"
        )
