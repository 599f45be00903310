"""What the example scripts share: the repository root, the real-data folder, quiet logs."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path:
    """`$RETDM_DATA_DIR`, else `<repo>/../shared/data`; exit with instructions if absent."""
    data_dir = Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (data_dir / "miml_scene" / "labels.csv").exists():
        sys.exit(
            f"The MIML scene images were not found under {data_dir}/miml_scene.\n"
            "Get the 'MIML natural scene' image set (Zhang & Zhou, LAMDA group, Nanjing "
            "University), then lay it out as\n"
            "  $RETDM_DATA_DIR/miml_scene/images/<n>.jpg\n"
            "  $RETDM_DATA_DIR/miml_scene/labels.csv  (Filenames + one 0/1 column per label)\n"
            "  $RETDM_DATA_DIR/miml_scene/split.json  (lists of file names: train, val, test)\n"
            "and run again with RETDM_DATA_DIR set."
        )
    return data_dir


def use_offline_weights(models: Path) -> None:
    """Point `KERAS_HOME` (unless set) at `runs/keras_home`, whose `models` is a link to the
    offline ImageNet weights in `models`: Keras finds the weights there, and what the library
    caches in `KERAS_HOME` (converted backbones, zoo entries) stays out of the data folder."""
    if "KERAS_HOME" in os.environ or not models.is_dir():
        return
    keras_home = REPO / "runs" / "keras_home"
    keras_home.mkdir(parents=True, exist_ok=True)
    if not (keras_home / "models").exists():
        (keras_home / "models").symlink_to(models, target_is_directory=True)
    os.environ["KERAS_HOME"] = str(keras_home)


class _NoRetracingNotice(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" notice.

    Each model's first ``predict`` traces its own function; a demo that trains and scores
    several small models in a row (probe L2 choice, seeds) trips TensorFlow's heuristic,
    which is meant for one function re-traced in a loop. Nothing else is filtered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_retracing_notices() -> None:
    """Install :class:`_NoRetracingNotice` on TensorFlow's logger (after importing it)."""
    import tensorflow as tf

    tf.get_logger().addFilter(_NoRetracingNotice())
