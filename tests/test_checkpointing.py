"""Resumable training (SIGKILL mid-stage, then resume) and the NaN guard."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from retdm_keras import RETDM, fit_stages
from retdm_keras.checkpointing import NonFiniteLossError, StageRecords, atomic_write

SCRIPT = Path(__file__).parent / "scripts" / "resumable_train.py"


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_killed_run_resumes_with_the_same_number_of_steps(tmp_path):
    # epochs (1, 1, 2): absolute epochs 0 classifier, 1 metric, 2-3 joint; kill inside epoch 3
    killed = run(tmp_path / "killed.json", tmp_path / "backup", 3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "killed.json").exists()
    assert StageRecords(tmp_path / "backup").finished() == ["classifier", "metric"]

    resumed = run(tmp_path / "resumed.json", tmp_path / "backup")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = run(tmp_path / "straight.json", tmp_path / "fresh-backup")
    assert straight.returncode == 0, straight.stderr[-2000:]

    resumed_out = json.loads((tmp_path / "resumed.json").read_text())
    straight_out = json.loads((tmp_path / "straight.json").read_text())
    # the joint stage's optimiser made exactly as many steps as without the kill (2 x 3)
    assert resumed_out["iterations"] == straight_out["iterations"] == 6
    predictions = np.asarray(resumed_out["predictions"])
    assert predictions.shape == (12, 4) and np.all(np.isfinite(predictions))
    # nothing half-written is left behind
    assert not list((tmp_path / "backup").glob("**/*.tmp"))


def test_nan_loss_stops_with_stage_and_step(tmp_path):
    rng = np.random.default_rng(0)
    x = {"images": rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32"), "index": np.arange(8)}
    y = np.eye(4, dtype="float32")[np.arange(8) % 4]
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model = RETDM(4, backbone="tiny_cnn", image_size=16, embed_dim=8)
    # a learning rate of 1e30 blows the weights up within a step or two
    with pytest.raises(NonFiniteLossError, match=r"stage 'classifier', epoch 1, step \d"):
        fit_stages(
            model,
            data,
            epochs=(3, 0, 0),
            learning_rates=(1e30, 0, 0),
            verbose=0,
            backup_dir=tmp_path / "backup",
            optimizer=lambda stage, lr: keras.optimizers.SGD(lr),
        )


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "file.txt"

    def fail(tmp):
        Path(tmp).write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write(target, lambda tmp: Path(tmp).write_text("done"))
    assert target.read_text() == "done"
