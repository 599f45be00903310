"""``RETDM``: the Keras model — embedders, heads, and the three-term training step.

Data flow of one training step (stage ``"joint"``)::

    images x ──f──► u ──classification head──► logits ──► L_cls (BCE)          ─┐
    labels y ──g──► v ──reconstruction head──► ŷ      ──► L_rec (MSE)          ─┼─► L
    index  i ──LabelNeighbors──► y_k ──g──► g(y_k) ┐                            │
                └─ a member x_jk of each y_k ──memory bank──► u_jk ┴─► L_metric ─┘

``predict`` only runs ``f`` and the classification head: the label branch is a training-time
regulariser. See ``retdm_keras.losses`` for the equations and ``retdm_keras.training`` for
the three-stage schedule.

The class is put together from one module per part:

* ``retdm``: ``RETDM`` itself — the constructor, the layers, the config and presets;
* ``loss_config``: ``LossConfig``, the loss settings (λ, μ, the metric loss's) and what they
  say trains in each stage, which the other parts ask;
* ``forward``: reading a batch's inputs, ``f``, and the predictions (label-set retrieval
  mixed in);
* ``baseline``: the tuned baseline head — what it reads, its mix into the predictions,
  ``set_baseline``;
* ``stages``: the three training stages, backbone freezing, the label side's gradient scale,
  ``compile``;
* ``training_data``: what a model takes from its training data before fitting (the feature
  statistics, the training set) and ``fit``;
* ``objective``: the loss terms and the train/test/predict steps.
"""

from retdm_keras.model.forward import BACKBONE_FEATURES, INPUT_KEYS
from retdm_keras.model.loss_config import LOSS_FIELDS, LossConfig
from retdm_keras.model.retdm import NEIGHBOR_IMAGES, RETDM, TIE_BREAKS
from retdm_keras.model.stages import STAGES
from retdm_keras.model.training_data import MAX_RETRIEVAL_SETS

__all__ = [
    "BACKBONE_FEATURES",
    "INPUT_KEYS",
    "LOSS_FIELDS",
    "LossConfig",
    "MAX_RETRIEVAL_SETS",
    "NEIGHBOR_IMAGES",
    "RETDM",
    "STAGES",
    "TIE_BREAKS",
]
