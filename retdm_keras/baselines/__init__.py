"""Reference multi-label baselines for the benchmarks: ML-kNN, C2AE, a linear probe and the
tuned binary-relevance logistic regression.

All four work on fixed feature vectors ``(N, F)`` — frozen backbone features of images or the
MULAN feature sets — with multi-hot labels ``(N, C)``, and give ``(N, C)`` scores in ``[0, 1]``
that ``retdm_keras.metrics.evaluate`` can score at its 0.5 threshold.

One module per baseline:

* ``mlknn``: ``MLkNN`` (Zhang & Zhou 2007) and the exact ``nearest_neighbors`` it uses;
* ``c2ae``: ``C2AE`` (Yeh et al. 2017), its ``pairwise_ranking_loss`` and ``fit_c2ae``;
* ``probe``: the per-label logistic regression ``linear_probe`` and ``fit_linear_probe``;
* ``logistic``: ``BinaryRelevanceLR``, per-label L2 logistic regression (scikit-learn's
  objective, solved in numpy) with ``C`` chosen on validation data: the tuned baseline.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(60, 4)).astype("float32")
>>> y = (x[:, :3] > 0).astype("float32")
>>> scores = MLkNN(k=5).fit(x, y).predict_proba(x[:2])
>>> scores.shape
(2, 3)
"""

from retdm_keras.baselines.c2ae import C2AE, fit_c2ae

# public before the split, outside ``__all__``: still importable from here
from retdm_keras.baselines.c2ae import DECODER_LOSSES as DECODER_LOSSES
from retdm_keras.baselines.c2ae import pairwise_ranking_loss as pairwise_ranking_loss
from retdm_keras.baselines.logistic import BinaryRelevanceLR
from retdm_keras.baselines.mlknn import MLkNN, nearest_neighbors
from retdm_keras.baselines.probe import fit_linear_probe, linear_probe

__all__ = [
    "BinaryRelevanceLR",
    "C2AE",
    "MLkNN",
    "fit_c2ae",
    "fit_linear_probe",
    "linear_probe",
    "nearest_neighbors",
]
