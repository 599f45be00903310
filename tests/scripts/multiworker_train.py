"""Train a tiny RETDM for a few steps; as one of 2 workers (TF_CONFIG) or as a single process.

Usage: multiworker_train.py OUT.npz [checkpoint_dir]   (TF_CONFIG set => multi-worker)
Saves the final weights and the per-stage logs to OUT.npz / OUT.json.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from tiny_setup import distinct_label_data, tiny_model  # noqa: E402

from retdm_keras.training.distributed import fit_stages_multiworker, make_strategy  # noqa: E402

GLOBAL_BATCH = 6


out = sys.argv[1]
checkpoint_dir = sys.argv[2] if len(sys.argv) > 2 else None
strategy = make_strategy("multiworker" if "TF_CONFIG" in os.environ else "default")
with strategy.scope():
    model = tiny_model()
history = fit_stages_multiworker(
    model,
    distinct_label_data(GLOBAL_BATCH),
    epochs=(1, 1, 1),
    learning_rates=(0.1, 0.1, 0.1),
    optimizer=lambda stage, lr: keras.optimizers.SGD(lr, momentum=0.9),
    checkpoint_dir=checkpoint_dir,
    verbose=0,
)
np.savez(out, *model.get_weights())
with open(out + ".json", "w") as f:
    json.dump(history, f)
