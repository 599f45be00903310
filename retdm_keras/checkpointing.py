"""Surviving interruptions and numerical failure during the three training stages.

``fit_stages(..., backup_dir=DIR)`` makes a run resumable:

* inside a stage, Keras ``BackupAndRestore`` saves the weights, the optimiser state and the
  epoch counter after every epoch in ``DIR/<stage>/``; a restarted run continues from the last
  completed epoch of that stage;
* when a stage finishes, ``StageRecords`` writes the model's weights to
  ``DIR/<stage>.weights.npz`` and the stage name to ``DIR/stages.json`` (each write goes to a
  temporary file that is renamed into place, so a kill never leaves half a file:
  :func:`retdm_keras.files.atomic_write`); a restarted
  run skips finished stages and starts the next one from those weights.

``StopOnNonFiniteLoss`` stops training at the first NaN/Inf loss with an error naming the
stage, epoch and step. It raises before the epoch ends, so the last checkpoint in ``DIR`` is
still the last good one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras
import numpy as np

from retdm_keras.files import atomic_write  # re-exported: the writes of this module

__all__ = ["NonFiniteLossError", "StageRecords", "StopOnNonFiniteLoss", "atomic_write"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise ``NonFiniteLossError`` at the first batch whose loss is NaN or infinite.

    Args:
        stage: the stage name, for the message.
        backup_dir: where the last good checkpoint is, for the message (optional).
    """

    def __init__(self, stage: str, backup_dir: str | os.PathLike[str] | None = None):
        super().__init__()
        self.stage = stage
        self.backup_dir = backup_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = {k: v for k, v in logs.items() if k.endswith("loss") and not math.isfinite(float(v))}
        if bad:
            where = (
                f"the last good checkpoint is kept in {self.backup_dir}"
                if self.backup_dir
                else "pass backup_dir to fit_stages to keep the last good checkpoint"
            )
            terms = ", ".join(f"{k}={float(v)}" for k, v in sorted(bad.items()))
            raise NonFiniteLossError(
                f"stage {self.stage!r}, epoch {self._epoch + 1}, step {batch + 1}: non-finite "
                f"loss ({terms}); training stopped — {where}. Lower the learning rate or lam."
            )


class StageRecords:
    """Which stages of a run have finished, with the weights each one ended with."""

    def __init__(self, backup_dir: str | os.PathLike[str]):
        self.dir = Path(backup_dir)
        self._index = self.dir / "stages.json"

    def finished(self) -> list[str]:
        """Stages finished so far, in order."""
        if not self._index.exists():
            return []
        return list(json.loads(self._index.read_text())["finished"])

    def stage_dir(self, stage: str) -> str:
        """Folder for the stage's ``BackupAndRestore`` files."""
        return str(self.dir / stage)

    def mark_finished(self, stage: str, model: keras.Model) -> None:
        """Save the model's weights at the end of ``stage``, then record the stage."""
        weights = model.get_weights()

        def save_weights(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, *weights)

        def save_index(tmp: str) -> None:
            Path(tmp).write_text(json.dumps({"finished": [*self.finished(), stage]}))

        atomic_write(self.dir / f"{stage}.weights.npz", save_weights)
        atomic_write(self._index, save_index)

    def restore(self, model: keras.Model) -> str | None:
        """Load the weights of the last finished stage into ``model``; its name, or None."""
        finished = self.finished()
        if not finished:
            return None
        with np.load(self.dir / f"{finished[-1]}.weights.npz") as saved:
            model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
        return finished[-1]
