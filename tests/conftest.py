"""Shared test settings: quiet TensorFlow, locate the real data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """``$RETDM_DATA_DIR`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("RETDM_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data folder; the test is skipped where it is absent."""
    path = data_dir()
    if not (path / "miml_scene" / "labels.csv").exists():
        pytest.skip(f"real data not found at {path} (set RETDM_DATA_DIR)")
    return path


# helper scripts run in subprocesses by the tests; never import them during collection
collect_ignore_glob = ["scripts/*"]
