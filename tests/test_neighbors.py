"""LabelNeighbors against brute force over all pairs of samples."""

import numpy as np
import pytest

from retdm_keras.neighbors import LabelNeighbors


def brute_force(labels, k):
    """Per sample: the k nearest distinct other label sets, ties by lexicographic order."""
    rows = [tuple(int(v) for v in r) for r in labels]
    distinct = sorted(set(rows))
    result = []
    for r in rows:
        candidates = [s for s in distinct if s != r]
        candidates.sort(key=lambda s: (sum(a != b for a, b in zip(r, s, strict=True)), s))
        result.append(candidates[:k])
    return result


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_matches_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    n, c = rng.integers(5, 60), rng.integers(2, 9)
    density = rng.uniform(0.1, 0.6)
    labels = (rng.random((n, c)) < density).astype(np.float32)
    # small block budget so several blocks are exercised
    index = LabelNeighbors(labels, num_neighbors=k, max_block_elements=16)
    expected = brute_force(labels, k)
    neighbor_labels, ids, mask = index.for_samples(np.arange(n))
    for i in range(n):
        real = int(mask[i].sum())
        assert real == len(expected[i])
        got = [tuple(int(v) for v in s) for s in neighbor_labels[i, :real]]
        assert got == expected[i]
        # the own set is never a neighbour
        assert index.set_index[i] not in ids[i, :real]
        assert np.all(mask[i, real:] == 0)


def test_unique_sets_and_members():
    rng = np.random.default_rng(11)
    labels = (rng.random((200, 6)) < 0.3).astype(np.float32)
    index = LabelNeighbors(labels, num_neighbors=4)
    np.testing.assert_array_equal(index.unique_sets[index.set_index], labels)
    assert index.num_sets == len({tuple(r) for r in labels})
    for s in range(index.num_sets):
        members = index.member_indices[index.member_offsets[s] : index.member_offsets[s + 1]]
        expected = np.flatnonzero((labels == index.unique_sets[s]).all(axis=1))
        np.testing.assert_array_equal(np.sort(members), expected)
    drawn = index.sample_members(np.arange(index.num_sets), np.random.default_rng(0))
    np.testing.assert_array_equal(index.set_index[drawn], np.arange(index.num_sets))


def test_order_of_samples_does_not_change_the_sets():
    rng = np.random.default_rng(2)
    labels = (rng.random((50, 5)) < 0.4).astype(np.float32)
    perm = rng.permutation(50)
    a = LabelNeighbors(labels, 3)
    b = LabelNeighbors(labels[perm], 3)
    np.testing.assert_array_equal(a.unique_sets, b.unique_sets)
    np.testing.assert_array_equal(a.neighbor_sets, b.neighbor_sets)


def test_single_label_set_has_no_neighbours():
    index = LabelNeighbors(np.ones((4, 3)), num_neighbors=5)
    assert index.num_sets == 1
    assert index.neighbor_mask.sum() == 0


def test_distances_are_hamming():
    labels = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]])
    index = LabelNeighbors(labels, num_neighbors=3)
    for s, row in enumerate(index.unique_sets):
        for k in range(3):
            other = index.unique_sets[index.neighbor_sets[s, k]]
            assert index.neighbor_distances[s, k] == int(np.sum(row != other))


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        LabelNeighbors(np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        LabelNeighbors(np.ones((0, 3)))
    with pytest.raises(ValueError, match="num_neighbors"):
        LabelNeighbors(np.ones((2, 3)), num_neighbors=0)
