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


# ----------------------------------------------------------------------------- sparse search
# The deletion-variant search runs for larger numbers of distinct sets; these tests force it
# on small inputs (and force its rounds, chunks and dense fallback) and compare against an
# independent brute force over the full distance matrix.
from retdm_keras.neighbors import search as neighbors_module  # noqa: E402


def brute_force_sets(labels, k):
    """(unique sets, neighbours (U, K), distances (U, K)) from the full U x U matrix."""
    unique = np.unique((np.asarray(labels) > 0.5).astype(np.int64), axis=0)
    num_sets = unique.shape[0]
    dist = unique.sum(1)[:, None] + unique.sum(1)[None, :] - 2 * unique @ unique.T
    np.fill_diagonal(dist, unique.shape[1] + 1)
    k_real = min(k, num_sets - 1)
    order = np.argsort(dist * num_sets + np.arange(num_sets)[None, :], axis=1)[:, :k_real]
    neighbors = np.zeros((num_sets, k), np.int64)
    distances = np.full((num_sets, k), -1, np.int64)
    neighbors[:, :k_real] = order
    distances[:, :k_real] = np.take_along_axis(dist, order, axis=1)
    return unique, neighbors, distances


def sparse_labels(rng, samples, num_labels, mean_labels):
    return (rng.random((samples, num_labels)) < mean_labels / num_labels).astype(np.float32)


@pytest.fixture
def force_sparse(monkeypatch):
    """Deletion search on any input, every affordable round, small pair chunks; counts the
    rows that reach the dense search."""
    monkeypatch.setattr(neighbors_module, "SPARSE_MIN_SETS", 0)
    monkeypatch.setattr(neighbors_module, "_RECORD_COST", 0.0)
    monkeypatch.setattr(neighbors_module, "_PAIR_COST", 0.0)
    monkeypatch.setattr(neighbors_module, "_CHUNK_PAIRS", 500)
    dense_rows = []
    dense = neighbors_module.dense_search

    def counting_dense(sets, rows, *args):
        dense_rows.append(len(rows))
        return dense(sets, rows, *args)

    monkeypatch.setattr(neighbors_module, "dense_search", counting_dense)
    return dense_rows


def check_against_brute_force(labels, k, **kwargs):
    index = LabelNeighbors(labels, num_neighbors=k, **kwargs)
    unique, neighbors, distances = brute_force_sets(labels, k)
    np.testing.assert_array_equal(index.unique_sets, unique)
    np.testing.assert_array_equal(index.neighbor_sets, neighbors)
    np.testing.assert_array_equal(index.neighbor_distances, distances)
    np.testing.assert_array_equal(index.neighbor_mask, (distances >= 0).astype(np.float32))
    assert index.neighbor_sets.dtype == np.int32 and index.neighbor_distances.dtype == np.int32
    return index


@pytest.mark.parametrize(
    ("seed", "num_labels", "mean_labels", "k"),
    [(0, 20, 3.0, 5), (1, 37, 3.0, 10), (2, 80, 3.0, 12), (3, 70, 2.0, 1), (4, 13, 4.0, 7)],
)
def test_deletion_search_matches_brute_force(force_sparse, seed, num_labels, mean_labels, k):
    rng = np.random.default_rng(seed)
    labels = sparse_labels(rng, 3000, num_labels, mean_labels)
    labels[:5] = 0  # the empty set, several times
    index = check_against_brute_force(labels, k)
    # most sets are resolved by the deletion search, not by the dense fallback
    assert sum(force_sparse) < index.num_sets // 2


def test_deletion_search_with_dense_fallback(force_sparse, monkeypatch):
    # a few crowded rows: they have more deletion variants than a dense row has entries, so
    # they end in the dense search, while the others are resolved by the deletion search
    monkeypatch.setattr(neighbors_module, "_RECORD_COST", 1.0)
    rng = np.random.default_rng(5)
    labels = sparse_labels(rng, 3000, 45, 3.0)
    labels[:200] = rng.random((200, 45)) < 0.6
    labels[200:210] = 1.0  # the full set
    index = check_against_brute_force(labels, 10, max_block_elements=5000)
    assert 200 <= sum(force_sparse) < index.num_sets // 2


def test_deletion_search_isolated_sets(force_sparse):
    # blocks of labels that no other set shares: fewer than K sets within any small radius
    rng = np.random.default_rng(6)
    labels = sparse_labels(rng, 2000, 30, 2.0)
    far = np.zeros((6, 30), np.float32)
    for i in range(6):
        far[i, (5 * i) : (5 * i + 5)] = 1.0
    labels = np.concatenate([labels, far, far])  # duplicated samples too
    check_against_brute_force(labels, 10)


@pytest.mark.parametrize("k", [3, 5, 8])
def test_deletion_search_fewer_sets_than_k(force_sparse, k):
    labels = np.array(
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]], np.float32
    )
    index = check_against_brute_force(labels, k)
    assert index.neighbor_mask.sum(axis=1).max() == min(k, index.num_sets - 1)


def test_deletion_search_default_settings_same_as_dense(monkeypatch):
    # same inputs, with the default switch (deletion search) and with the dense search alone
    rng = np.random.default_rng(7)
    labels = sparse_labels(rng, 6000, 50, 3.0)
    labels = labels[rng.integers(0, 6000, 8000)]  # duplicates
    assert LabelNeighbors(labels, 4).num_sets >= neighbors_module.SPARSE_MIN_SETS
    sparse = check_against_brute_force(labels, 10)
    monkeypatch.setattr(neighbors_module, "SPARSE_MIN_SETS", 1 << 40)
    dense = LabelNeighbors(labels, 10)
    names = "unique_sets set_index neighbor_sets neighbor_mask neighbor_distances"
    for name in (names + " member_offsets member_indices").split():
        a, b = getattr(sparse, name), getattr(dense, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
