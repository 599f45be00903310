"""The exact search for the ``K`` nearest other label sets by Hamming distance.

Two algorithms, both exact, that fill ``(U, K)`` neighbour and distance arrays in place:
:func:`deletion_search` (shared deletion variants give the candidate pairs within a growing
radius; for many sparse sets) and :func:`dense_search` (blocks of distance-matrix rows; for
the sets the first one leaves and for small indexes). ``LabelNeighbors`` calls them.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np

# ----------------------------------------------------------------------------- search tuning
SPARSE_MIN_SETS = 2_000
"""Below this many distinct sets the dense search is used alone (it is fast there)."""

# Relative costs, in dense distance entries, of one deletion-variant record and one candidate
# pair: a round of the deletion search runs only while it is estimated cheaper than the dense
# search of the sets it is expected to resolve.
_RECORD_COST = 20.0
_PAIR_COST = 20.0
# Memory: at most max(_MAX_RECORDS, 4 U K) variant records in a round; candidate pairs are
# processed in chunks of about _CHUNK_PAIRS.
_MAX_RECORDS = 1 << 24
_CHUNK_PAIRS = 1 << 20


def dense_search(sets, rows, k_real, max_block_elements, neighbors, distances):
    """Exact K nearest other sets of the sets ``rows``, against all sets, block by block.

    ``sets`` is the ``(U, C)`` float32 0/1 matrix of the unique sets.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return
    num_sets = sets.shape[0]
    sizes = sets.sum(axis=1)
    rows_per_block = max(1, min(num_sets, max_block_elements // num_sets))
    excluded = np.int16(sets.shape[1] + 1)  # larger than any Hamming distance
    for start in range(0, rows.size, rows_per_block):
        block = rows[start : start + rows_per_block]
        local = np.arange(block.size)
        # Hamming distance between 0/1 vectors; exact in float32 for C < 2**24.
        hamming = sizes[block, None] + sizes[None, :] - 2.0 * (sets[block] @ sets.T)
        hamming = np.rint(hamming).astype(np.int16)
        hamming[local, block] = excluded  # never pick the own set
        # The K-th smallest distance of each row; every set at most that far is a
        # candidate (ties included), then candidates are ordered by (distance, index).
        kth = np.partition(hamming, k_real - 1, axis=1)[:, k_real - 1]
        cand_rows, cand_cols = np.nonzero(hamming <= kth[:, None])
        cand_dist = hamming[cand_rows, cand_cols]
        order = np.lexsort((cand_cols, cand_dist, cand_rows))
        first = np.searchsorted(cand_rows[order], local)  # each row's first candidate
        take = order[first[:, None] + np.arange(k_real)[None, :]]
        neighbors[block, :k_real] = cand_cols[take]
        distances[block, :k_real] = cand_dist[take]


def _combinations(size: int, depth: int) -> np.ndarray:
    """``(C(size, depth), depth)`` int64: every choice of ``depth`` of ``size`` positions."""
    flat = np.array(list(itertools.combinations(range(size), depth)), dtype=np.int64)
    return flat.reshape(comb(size, depth), depth)


def _packed_words(binary: np.ndarray) -> np.ndarray:
    """``(rows, W)`` uint64: the 0/1 rows packed into 64-bit words (for XOR + popcount)."""
    width = -(-binary.shape[1] // 64) * 64
    padded = np.zeros((binary.shape[0], width), dtype=bool)
    padded[:, : binary.shape[1]] = binary
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")


def _variant_records(unique_bin, sizes, label_hash, set_hash, classes):
    """Hashes and set ids of deletion variants, one sorted table per deletion depth.

    ``classes`` maps a set size ``s`` to the depths ``d`` wanted for the sets of that size: each
    such set with every choice of ``d`` of its labels removed. The hash of a label set is the
    wrapping sum of random 64-bit values of its labels, so removing labels is a subtraction.
    Returns ``{d: (hashes in ascending order, set id of each)}``.
    """
    members, positions = {}, {}
    for size, depths in classes.items():
        if depths:
            members[size] = np.flatnonzero(sizes == size)
            rows = members[size]
            positions[size] = np.nonzero(unique_bin[rows])[1].reshape(rows.size, size)
    records = {}
    for depth in sorted({d for depths in classes.values() for d in depths}):
        hashes_out, sets_out = [], []
        for size, depths in classes.items():
            if depth not in depths:
                continue
            combos = _combinations(size, depth)
            chunk = max(1, (1 << 22) // max(1, combos.size))
            for start in range(0, members[size].size, chunk):
                ids = members[size][start : start + chunk]
                hashes = set_hash[ids][:, None]
                if depth:
                    removed = label_hash[positions[size][start : start + chunk][:, combos]]
                    hashes = hashes - removed.sum(axis=2, dtype=np.uint64)
                hashes_out.append(hashes.reshape(-1))
                sets_out.append(np.repeat(ids.astype(np.int32), combos.shape[0]))
        hashes = np.concatenate(hashes_out)
        del hashes_out
        order = np.argsort(hashes)
        hashes = hashes[order]
        records[depth] = (hashes, np.concatenate(sets_out)[order])
        del sets_out, order
    return records


def _record_classes(size_counts, query_sizes, radius):
    """Which (set size, deletion depth) variants a round of radius ``radius`` needs.

    A query set ``a`` (size ``sa``, depth ``d1``) meets a set ``b`` (size ``sb``, depth ``d2``)
    on a common subset of size ``t = sa - d1 = sb - d2`` with ``d1 + d2 <= radius``. Query sets
    need all depths up to the radius; any other set only the depths that can meet one.
    """
    max_size = size_counts.size - 1
    is_query = np.zeros(max_size + 2, dtype=bool)
    is_query[query_sizes] = True
    query_upto = np.concatenate([[0], np.cumsum(is_query)])  # query sizes below each size
    classes = {}
    for size in np.flatnonzero(size_counts):
        size = int(size)
        depths = []
        for depth in range(min(radius, size) + 1):
            common = size - depth
            top = min(max_size + 1, common + radius - depth + 1)  # query sizes in [common, top)
            if is_query[size] or query_upto[top] > query_upto[common]:
                depths.append(depth)
        classes[size] = depths
    return classes


def deletion_search(unique_bin, k_real, neighbors, distances):
    """Exact K nearest other sets via deletion variants, with a growing search radius.

    ``h(a, b) <= D`` exactly when ``a`` and ``b`` share a subset ``c`` with
    ``(|a| - |c|) + (|b| - |c|) <= D`` (take ``c = a & b``). So, for radius ``D = 1, 2, ...``,
    every set lists its subsets with up to ``D`` labels removed ("deletion variants"); two sets
    with a common variant whose depths add up to at most ``D`` are a candidate pair, and every
    pair at distance ``<= D`` is among them (distances are then computed exactly, so hash
    collisions only add candidates). A set with at least ``K`` other sets within ``D`` is
    resolved: its K nearest are among them, ties at the K-th distance included. Rounds stop
    when the next one is estimated dearer than the dense search of the sets still unresolved.

    Fills ``neighbors`` / ``distances`` for resolved sets; returns ``(unresolved set indices,
    radii of the completed rounds)``.
    """
    num_sets, num_labels = unique_bin.shape
    sizes = unique_bin.sum(axis=1, dtype=np.int64)
    size_counts = np.bincount(sizes, minlength=num_labels + 1)
    label_hash = np.frombuffer(
        np.random.default_rng(20240607).bytes(8 * num_labels), dtype="<u8"
    ).copy()
    set_rows, set_cols = np.nonzero(unique_bin)
    set_hash = np.zeros(num_sets, dtype=np.uint64)
    np.add.at(set_hash, set_rows, label_hash[set_cols])
    del set_rows, set_cols
    words = _packed_words(unique_bin)
    max_records = max(_MAX_RECORDS, 4 * num_sets * k_real)
    unresolved = np.arange(num_sets)
    radii, resolved_share, crowded = [], 0.5, []
    for radius in range(1, num_labels + 1):
        # A set with more variants than a dense row has entries goes to the dense search.
        variants_per_set = np.array(
            [sum(comb(s, d) for d in range(min(radius, s) + 1)) for s in range(num_labels + 1)],
            dtype=np.float64,
        )
        dear = variants_per_set[sizes[unresolved]] * _RECORD_COST > num_sets
        crowded.append(unresolved[dear])
        unresolved = unresolved[~dear]
        if unresolved.size == 0:
            break
        # Expected saving of the next round: the dense search of the sets it will resolve,
        # guessed as twice the share the last round resolved (at least 5%).
        saving = float(unresolved.size) * num_sets * min(1.0, max(2.0 * resolved_share, 0.05))
        classes = _record_classes(size_counts, np.unique(sizes[unresolved]), radius)
        num_records = sum(
            int(size_counts[s]) * comb(s, d) for s, depths in classes.items() for d in depths
        )
        if num_records > max_records or num_records * _RECORD_COST > saving:
            break
        records = _variant_records(unique_bin, sizes, label_hash, set_hash, classes)
        is_query = np.zeros(num_sets, dtype=bool)
        is_query[unresolved] = True
        # Candidate pairs: query variant (depth d1) x any variant (depth d2) with the same
        # hash, as (query set, start and length of the matching run among the d2 variants).
        plan, per_query = [], np.zeros(num_sets, dtype=np.int64)
        for d1, (hashes_1, sets_1) in records.items():
            query = is_query[sets_1]
            hashes_1, sets_1 = hashes_1[query], sets_1[query]
            for d2, (hashes_2, sets_2) in records.items():
                if d1 + d2 > radius or hashes_1.size == 0:
                    continue
                start = np.searchsorted(hashes_2, hashes_1, side="left")
                count = np.searchsorted(hashes_2, hashes_1, side="right") - start
                hit = np.flatnonzero(count)
                hit = hit[np.argsort(sets_1[hit], kind="stable")]  # by query set
                plan.append((sets_1[hit], start[hit], count[hit], sets_2))
                np.add.at(per_query, sets_1[hit], count[hit])
        del records, hashes_1, sets_1
        num_pairs = int(per_query.sum())
        if num_pairs * _PAIR_COST > saving:
            break
        radii.append(radius)
        # Resolve the query sets in chunks of consecutive ids, a bounded number of pairs each.
        ends = np.cumsum(per_query)
        cuts = np.searchsorted(ends, np.arange(1, ends[-1] // _CHUNK_PAIRS + 1) * _CHUNK_PAIRS)
        cuts = np.unique(np.concatenate([[0], cuts + 1, [num_sets]]).clip(0, num_sets))
        still = np.zeros(num_sets, dtype=bool)
        for low, high in zip(cuts[:-1], cuts[1:], strict=True):
            still[low:high] = _resolve_chunk(
                plan, int(low), int(high), radius, words, k_real, neighbors, distances
            )
        resolved_share = 1.0 - still[unresolved].mean()
        unresolved = unresolved[still[unresolved]]
        del plan, per_query, still
    return np.sort(np.concatenate([*crowded, unresolved])), radii


def _resolve_chunk(plan, low, high, radius, words, k_real, neighbors, distances):
    """Candidate pairs of the query sets ``low <= a < high``; fills those with ``>= K`` other
    sets within ``radius`` and returns a mask (over ``low:high``) of those with fewer."""
    width = high - low
    codes = []
    for query_sets, start, count, sets_2 in plan:
        lo, hi = np.searchsorted(query_sets, [low, high])
        start, count = start[lo:hi], count[lo:hi]
        shift = np.repeat(start - (np.cumsum(count) - count), count)
        other = sets_2[np.arange(shift.size) + shift].astype(np.int64)
        first = np.repeat(query_sets[lo:hi].astype(np.int64) - low, count)
        codes.append(first * words.shape[0] + other)
    codes = np.sort(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    distinct = np.ones(codes.size, dtype=bool)
    distinct[1:] = codes[1:] != codes[:-1]
    first, second = np.divmod(codes[distinct], words.shape[0])
    del codes, distinct
    dist = np.bitwise_count(words[first + low] ^ words[second]).sum(axis=1, dtype=np.int32)
    keep = (first + low != second) & (dist <= radius)
    first, second, dist = first[keep], second[keep], dist[keep]
    found = np.bincount(first, minlength=width)
    finished = np.flatnonzero(found >= k_real)
    if finished.size:
        keep = (found >= k_real)[first]
        first, second, dist = first[keep], second[keep], dist[keep]
        # ``first`` ascending and ``second`` ascending within it: order by (first, dist).
        order = np.lexsort((dist, first))
        first, second, dist = first[order], second[order], dist[order]
        take = np.searchsorted(first, finished)[:, None] + np.arange(k_real)[None, :]
        neighbors[finished + low, :k_real] = second[take]
        distances[finished + low, :k_real] = dist[take]
    return found < k_real
