"""One step of each RETDM stage on one device and under MirroredStrategy(2 CPUs); print JSON.

Run in a fresh process: logical devices must be configured before TensorFlow starts.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tiny_setup import N, distinct_label_data, tiny_model  # noqa: E402

from retdm_keras import fit_stages  # noqa: E402


def data():
    return distinct_label_data(N)  # one global batch


def build(initial=None):
    norm = float(sys.argv[1]) if len(sys.argv) > 1 else None
    model = tiny_model(embedding_norm=norm)
    if initial is not None:
        model.set_weights(initial)
    return model


def run(strategy):
    with strategy.scope():
        model = build(run.initial)
    if run.initial is None:
        run.initial = model.get_weights()
    logs = {}
    for stage, epochs in (("classifier", (1, 0, 0)), ("metric", (0, 1, 0)), ("joint", (0, 0, 1))):
        history = fit_stages(
            model,
            data(),
            epochs=epochs,
            learning_rates=(0.1, 0.1, 0.1),
            verbose=0,
            optimizer=lambda stage, lr: keras.optimizers.SGD(lr, momentum=0.9),
        )
        logs[stage] = {
            k: float(v[-1]) for k, v in history[stage].history.items() if k.endswith("loss")
        }
    bank = model.training_set.bank.embeddings
    replicas = [v.numpy() for v in strategy.experimental_local_results(bank)]
    return logs, [w.tolist() for w in model.get_weights()], replicas


run.initial = None
single_logs, single_weights, single_bank = run(tf.distribute.get_strategy())
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored_logs, mirrored_weights, mirrored_banks = run(mirrored)
print(
    json.dumps(
        {
            "replicas": mirrored.num_replicas_in_sync,
            "single": single_logs,
            "mirrored": mirrored_logs,
            "max_weight_diff": max(
                float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(single_weights, mirrored_weights, strict=True)
            ),
            "bank_replicas": len(mirrored_banks),
            "max_bank_diff": max(float(np.max(np.abs(b - single_bank[0]))) for b in mirrored_banks),
        }
    )
)
