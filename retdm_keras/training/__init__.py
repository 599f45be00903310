"""The paper's three-stage schedule, and its default optimiser.

RETDM is trained in three stages (Li et al. 2020, Sec. III-D):

1. ``"classifier"`` — the image embedder ``f`` and the classification head, BCE only;
2. ``"metric"``     — ``f`` and the classifier frozen; the label embedder ``g`` and the
   reconstruction head learn ``lam·L_metric + mu·L_rec``, so the label space settles around
   a fixed image space;
3. ``"joint"``      — everything, ``L_cls + lam·L_metric + mu·L_rec``.

``fit_stages`` runs them in order with a fresh optimiser per stage (the set of trained
weights changes between stages), learning rate ×0.1 when the validation loss stops improving.
The default optimiser depends on the input (:func:`default_optimizer_name`): for images the
paper's, SGD with momentum 0.9 and weight decay 1e-4 at learning rates 0.01 / 0.01 / 0.001;
for feature vectors (``backbone="mlp"``, ours) Adam at 3e-4 / 3e-4 / 3e-5 with decoupled
weight decay 3, biases excluded (see ``docs/method.md``, "Adam for feature vectors" and
"Weight decay for feature vectors").

The package's modules: ``stage_loop`` (``stages_to_run``, the stage loop every path
shares, and ``begin_stage``), ``fit`` (``fit_stages``: the stages through Keras
``model.fit``, on one device or mirrored, and the frozen-backbone path), ``distributed``
(strategies by name, ``fit_stages_multiworker``: the same stages with its own epochs, for
``MultiWorkerMirroredStrategy``), ``policy`` (whether a run trains the backbone frozen:
``resolve_freeze_backbone``), ``schedule`` (the stage schedule, the learning rate within a
stage), ``optimizers`` (optimisers by name, the default metrics) and ``verbosity``.

Example:

>>> import numpy as np
>>> import tensorflow as tf
>>> from retdm_keras import RETDM
>>> rng = np.random.default_rng(0)
>>> x = {"images": rng.random((16, 32, 32, 3)).astype("float32") * 255,
...      "index": np.arange(16)}
>>> y = (rng.random((16, 4)) > 0.5).astype("float32")
>>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
>>> model = RETDM(4, backbone="tiny_cnn", image_size=32, embed_dim=8)
>>> histories = fit_stages(model, ds, epochs=(1, 1, 1), verbose=0)
>>> list(histories)
['classifier', 'metric', 'joint']
"""

from retdm_keras.optimizer_defaults import (
    ADAM_LEARNING_RATES,
    DEFAULT_LEARNING_RATES,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    backbone_learning_rates,
    default_learning_rates,
    default_optimizer_name,
    default_weight_decay,
)
from retdm_keras.training.fit import fit_stages
from retdm_keras.training.optimizers import (
    OptimizerFactory,
    backbone_optimizer,
    default_metrics,
    default_optimizer,
    make_optimizer,
)
from retdm_keras.training.policy import (
    default_freeze_backbone,
    frozen_by_default,
    resolve_freeze_backbone,
)
from retdm_keras.training.schedule import learning_rates_used, stage_schedule
from retdm_keras.training.stage_loop import begin_stage
from retdm_keras.training.verbosity import resolve_verbose

__all__ = [
    "ADAM_LEARNING_RATES",
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "OptimizerFactory",
    "backbone_learning_rates",
    "backbone_optimizer",
    "begin_stage",
    "default_freeze_backbone",
    "default_learning_rates",
    "default_metrics",
    "default_optimizer",
    "default_optimizer_name",
    "default_weight_decay",
    "fit_stages",
    "frozen_by_default",
    "learning_rates_used",
    "make_optimizer",
    "resolve_freeze_backbone",
    "resolve_verbose",
    "stage_schedule",
]
