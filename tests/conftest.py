"""Shared test settings: quiet TensorFlow, locate the real data, Hypothesis profiles.

Hypothesis profiles (chosen here, at import, so that every ``@settings(...)`` in the test
modules, built when they are imported, inherits the profile's values):

* ``ci``: derandomized (each property test runs the same examples on every run, derived
  from the test itself), no example database, no deadline, ``print_blob=True``. Selected
  when the environment variable ``CI`` is set (to anything but ``""``, ``0``, ``false``,
  ``no`` or ``off``); CI runs with ``CI=true``.
* ``dev``: Hypothesis' defaults, random exploration (new examples on each run, failures
  replayed from the local ``.hypothesis`` database), ``print_blob=True``. The default.

``HYPOTHESIS_PROFILE=<name>`` overrides the choice, as does pytest's
``--hypothesis-profile``. A test's own ``@settings`` must not set ``derandomize``,
``database`` or ``parent`` (``tests/test_hypothesis_profile.py`` checks).
"""

import os
from collections.abc import Mapping
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

_NOT_CI = {"", "0", "false", "no", "off"}
# Hypothesis' own defaults, not whatever profile it auto-loaded at import (its built-in
# "ci" one when it sees CI variables): the parent of both profiles below.
_HYPOTHESIS_DEFAULTS = settings.get_profile("default")
settings.register_profile(
    "ci",
    _HYPOTHESIS_DEFAULTS,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    max_examples=100,  # Hypothesis' default; the property tests set their own counts
    suppress_health_check=[HealthCheck.too_slow],  # shared CI machines vary in speed
)
settings.register_profile("dev", _HYPOTHESIS_DEFAULTS, derandomize=False, print_blob=True)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The Hypothesis profile for an environment: ``HYPOTHESIS_PROFILE``, else ``ci``/``dev``."""
    chosen = environ.get("HYPOTHESIS_PROFILE", "").strip()
    if chosen:
        return chosen
    return "dev" if environ.get("CI", "").strip().lower() in _NOT_CI else "ci"


settings.load_profile(hypothesis_profile(os.environ))


# The Makefile sets RETDM_DATA_DIR; a bare `pytest` gets the same default (the library itself
# never guesses the data folder).
os.environ.setdefault("RETDM_DATA_DIR", str(REPO.parent / "shared" / "data"))


def data_dir() -> Path:
    """``$RETDM_DATA_DIR`` (the Makefile's default: ``<repo>/../shared/data``)."""
    return Path(os.environ["RETDM_DATA_DIR"])


@pytest.fixture
def shared_data() -> Path:
    """The real data folder; the test is skipped where it is absent."""
    path = data_dir()
    if not (path / "miml_scene" / "labels.csv").exists():
        pytest.skip(f"real data not found at {path} (set RETDM_DATA_DIR)")
    return path


# helper scripts run in subprocesses by the tests; never import them during collection
collect_ignore_glob = ["scripts/*"]


def private_keras_home(shared_data: Path, folder: Path) -> Path:
    """A writable ``KERAS_HOME`` in ``folder`` whose ``models`` is the shared offline ImageNet
    weights (caches the library writes there — converted backbones, features — stay out of
    the shared data)."""
    keras_home = folder / "keras_home"
    keras_home.mkdir(parents=True, exist_ok=True)
    link = keras_home / "models"
    if not link.exists():
        link.symlink_to(shared_data / "keras_home" / "models", target_is_directory=True)
    return keras_home


@pytest.fixture
def imagenet_keras_home(shared_data, tmp_path, monkeypatch) -> Path:
    """``KERAS_HOME`` with the shared offline ImageNet weights (skip where absent)."""
    if not (shared_data / "keras_home" / "models" / "mobilenet_2_5_224_tf_no_top.h5").exists():
        pytest.skip("the offline ImageNet MobileNet weights are not in the shared data")
    keras_home = private_keras_home(shared_data, tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(keras_home))  # read by the loader at call time
    return keras_home
