"""Nearest *other* label sets of a training set, by Hamming distance.

RETDM contrasts every image with the label sets that are closest to, but different from, its
own. Many samples share a label set (MIML scene: 1,400 images, 20 sets; COCO: ~80k images,
tens of thousands of sets), so the index works on the **unique** label sets:

1. ``unique_sets`` (U, C): the distinct label sets, ordered lexicographically (so the index is
   the same for any order of the samples); ``set_index`` (N,) maps each sample to its set.
2. For every unique set, its ``K`` nearest *other* unique sets by Hamming distance
   ``h(a, b) = |a| + |b| - 2 a·b``. Ties are broken by the lower set index, or — with
   ``tie_break`` (a seed or generator) and :meth:`LabelNeighbors.redraw_ties` — by a random
   order of the sets, so that negatives spread over all equally near sets instead of always
   the first ones (``RETDM`` redraws them every epoch). Where fewer than
   ``K`` other sets exist, the rest are padding (index 0, distance -1, ``neighbor_mask == 0``).
   The search is exact, in two stages:

   a. *Deletion variants* (from 2,000 sets up): ``h(a, b) <= D`` exactly when ``a`` and ``b``
      have a common subset ``c`` with ``(|a| - |c|) + (|b| - |c|) <= D``. For ``D = 1, 2, ...``
      each set lists its subsets with up to ``D`` labels removed (hashed and sorted); sets that
      share a subset within that budget are candidates, whose distances are then computed
      exactly (XOR + popcount). This finds every pair within ``D``, so a set with ``K`` or more
      other sets within ``D`` has its exact ``K`` nearest (ties included). Sparse label sets
      are resolved within a few rounds; rounds continue while they are estimated cheaper than
      the dense search of the sets they would resolve, and sets with many labels skip them.
      Work and memory are about linear in ``U`` (candidate pairs go in bounded chunks).
   b. *Dense blocks* for every set still unresolved (and for all sets when there are fewer
      than 2,000): matrix products of a block of sets against all ``U`` sets, then a
      partition, so memory is ``block × U`` (``max_block_elements``), never ``U × U``.
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

from retdm_keras.neighbors.index import LabelNeighbors

__all__ = ["LabelNeighbors"]
