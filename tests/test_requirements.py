"""The declared requirements follow the install rule (issue #30): one TensorFlow distribution,
``tensorflow``, for every machine (its Linux x86_64 build runs on CPUs and NVIDIA GPUs), never
``tensorflow-cpu`` or ``tensorflow-gpu`` next to it, and an ``and-cuda`` extra that pulls the
CUDA libraries for the same TensorFlow versions on Linux."""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
OTHER_BUILDS = {"tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos"}


def _requirements(text: str) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line]


def _config() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    return config


def _tensorflow(requirements: list[Requirement]) -> list[Requirement]:
    return [r for r in requirements if r.name.lower().replace("_", "-").startswith("tensorflow")]


def test_one_tensorflow_distribution_for_every_machine():
    core = _requirements(_config()["options"]["install_requires"])
    (tensorflow,) = [r for r in _tensorflow(core) if r.name == "tensorflow"]
    assert not tensorflow.extras and tensorflow.marker is None  # every platform, no extras
    assert "2.21.0" in tensorflow.specifier and "2.22.0" not in tensorflow.specifier
    everything = [r for r in _tensorflow(core) if r.name != "tensorflow"]
    assert not [r for r in everything if r.name.lower() in OTHER_BUILDS], everything


def test_the_and_cuda_extra_pulls_cuda_for_the_same_versions_on_linux():
    config = _config()
    core = next(r for r in _requirements(config["options"]["install_requires"])
                if r.name == "tensorflow")  # fmt: skip
    extras = config["options.extras_require"]
    (cuda,) = _requirements(extras["and-cuda"])
    assert cuda.name == "tensorflow" and cuda.extras == {"and-cuda"}
    assert cuda.specifier == core.specifier
    assert cuda.marker is not None
    assert cuda.marker.evaluate({"sys_platform": "linux"})
    assert not cuda.marker.evaluate({"sys_platform": "darwin"})
    for name, text in extras.items():  # no extra brings another TensorFlow build back
        assert not [r for r in _requirements(text) if r.name.lower() in OTHER_BUILDS], name


def test_the_rule_checks_can_fail():
    """The parsing above sees a CPU-only pin and a platform marker when they are there."""
    (cpu,) = _requirements('tensorflow-cpu>=2.21,<2.22; platform_machine != "arm64"  # old')
    assert cpu.name in OTHER_BUILDS
    assert not cpu.marker.evaluate({"platform_machine": "arm64"})
    assert Marker('sys_platform == "linux"').evaluate({"sys_platform": "linux"})
