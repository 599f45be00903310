"""``LabelNeighbors``: each label set's nearest other sets, as training asks for them.

It finds the unique label sets of the samples, asks :mod:`retdm_keras.neighbors.search` for
the ``K`` nearest other sets of each (with ``tie_break``, in a random order of the sets), and
answers the queries of training: the neighbour sets of a batch, a member of each set.
"""

from __future__ import annotations

import numpy as np

from retdm_keras.neighbors import search


class LabelNeighbors:
    """Index of the ``num_neighbors`` nearest distinct label sets of each training sample.

    Args:
        labels: ``(N, C)`` multi-hot training labels (anything > 0.5 counts as positive).
        num_neighbors: ``K``, neighbours per label set.
        max_block_elements: memory budget of one distance block (rows × U entries).
        tie_break: ``None`` (default) breaks distance ties by set order; an ``int`` seed or a
            ``numpy.random.Generator`` breaks them in a random order of the sets.

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

    def __init__(
        self,
        labels,
        num_neighbors: int = 10,
        max_block_elements: int = 1 << 22,
        tie_break: int | np.random.Generator | None = None,
    ):
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
        self.max_block_elements = int(max_block_elements)
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
        del binary, packed, keys, first, inverse

        # 2. K nearest other sets (deletion variants, then dense blocks for what is left).
        if tie_break is None:
            self.neighbor_sets, self.neighbor_distances = self._nearest_other_sets(
                unique_bin, self.num_neighbors, max_block_elements, self.unique_sets
            )
        else:
            self.redraw_ties(tie_break)
        self.neighbor_mask = (self.neighbor_distances >= 0).astype(np.float32)

        # 3. Members of each set (CSR).
        counts = np.bincount(self.set_index, minlength=self.num_sets)
        self.member_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.member_indices = np.argsort(self.set_index, kind="stable").astype(np.int32)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _nearest_other_sets(unique_bin: np.ndarray, k: int, max_block_elements: int, sets=None):
        num_sets = unique_bin.shape[0]
        k_real = min(k, num_sets - 1)
        neighbors = np.zeros((num_sets, k), dtype=np.int32)
        distances = np.full((num_sets, k), -1, dtype=np.int32)
        if k_real == 0:
            return neighbors, distances
        # Deletion-variant search first; what it leaves goes through the dense blocks.
        if num_sets >= search.SPARSE_MIN_SETS:
            rest, _ = search.deletion_search(unique_bin, k_real, neighbors, distances)
        else:
            rest = np.arange(num_sets)
        if sets is None:
            sets = unique_bin.astype(np.float32)
        search.dense_search(sets, rest, k_real, max_block_elements, neighbors, distances)
        return neighbors, distances

    def redraw_ties(self, rng: int | np.random.Generator | None = None) -> np.ndarray:
        """Break distance ties in a new random order of the sets; returns ``neighbor_sets``.

        The nearest distances are unchanged; among sets at the same distance as the ``K``-th
        neighbour, a random subset is chosen instead of the lowest-numbered ones. The search
        runs on the sets in a random order (its own rule, lowest index first, then picks a
        random one) and maps the result back.
        """
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        order = rng.permutation(self.num_sets)
        shuffled = self.unique_sets[order]
        found, distances = self._nearest_other_sets(
            shuffled > 0.5, self.num_neighbors, self.max_block_elements, shuffled
        )
        neighbors = np.zeros_like(found)
        real = distances >= 0
        neighbors[order] = np.where(real, order[found], 0)
        self.neighbor_sets = neighbors.astype(np.int32)
        self.neighbor_distances = np.empty_like(distances)
        self.neighbor_distances[order] = distances
        return self.neighbor_sets

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
