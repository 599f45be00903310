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
import tensorflow as tf  # noqa: E402

from retdm_keras import RETDM  # noqa: E402
from retdm_keras.distributed import fit_stages_multiworker, make_strategy  # noqa: E402

NUM_LABELS, SIZE, N, GLOBAL_BATCH = 4, 16, 12, 6


def data():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (N, SIZE, SIZE, 3)).astype("float32")
    codes = rng.permutation(2**NUM_LABELS - 1)[:N] + 1  # one image per label set
    labels = ((codes[:, None] >> np.arange(NUM_LABELS)) & 1).astype("float32")
    x = {"images": images, "index": np.arange(N)}
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(GLOBAL_BATCH)


out = sys.argv[1]
checkpoint_dir = sys.argv[2] if len(sys.argv) > 2 else None
strategy = make_strategy("multiworker" if "TF_CONFIG" in os.environ else "default")
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = RETDM(
        NUM_LABELS,
        backbone="tiny_cnn",
        image_size=SIZE,
        embed_dim=8,
        label_hidden_units=16,
        num_neighbors=3,
    )
history = fit_stages_multiworker(
    model,
    data(),
    epochs=(1, 1, 1),
    learning_rates=(0.1, 0.1, 0.1),
    optimizer=lambda stage, lr: keras.optimizers.SGD(lr, momentum=0.9),
    checkpoint_dir=checkpoint_dir,
    verbose=0,
)
np.savez(out, *model.get_weights())
with open(out + ".json", "w") as f:
    json.dump(history, f)
