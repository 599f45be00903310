"""Train a tiny RETDM with fit_stages(backup_dir=...); optionally SIGKILL itself mid-stage.

Usage: resumable_train.py OUT.json BACKUP_DIR [KILL_EPOCH]
With KILL_EPOCH (0-based, counted across stages) the process kills itself with SIGKILL at
the second batch of that epoch. Otherwise it finishes and writes the optimiser step count of
the last stage and the predictions to OUT.json.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from tiny_setup import distinct_label_data, tiny_model  # noqa: E402

from retdm_keras import fit_stages  # noqa: E402


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.kill_epoch, self.epoch = epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.kill_epoch and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)


out, backup = sys.argv[1], sys.argv[2]
callbacks = [KillAt(int(sys.argv[3]))] if len(sys.argv) > 3 else []
model = tiny_model()
fit_stages(
    model,
    distinct_label_data(4),  # 3 steps per epoch
    epochs=(1, 1, 2),
    learning_rates=(0.05, 0.05, 0.05),
    backup_dir=backup,
    callbacks=callbacks,
    verbose=0,
)
images = np.stack([x["images"] for x, _ in distinct_label_data(12).unbatch().batch(12)])[0]
with open(out, "w") as f:
    json.dump(
        {
            "iterations": int(model.optimizer.iterations.numpy()),
            "predictions": model.predict(images, verbose=0).tolist(),
        },
        f,
    )
