"""The ``retdm-keras`` script answers ``--help``, ``zoo list`` and usage errors without loading
TensorFlow or Keras, keeps TensorFlow's start-up logs quiet, and leaves ``import retdm_keras``
eager (``keras.saving.load_model`` needs the package's classes registered).

Speed is checked through what gets imported, never by timing. Every check of the start-up
runs in a fresh interpreter: this one has long since imported TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras")
STARTUP_NOISE = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations", "port.cc")
# The switches under test; the tests set them themselves (conftest sets the TF log level).
SWITCHES = ("TF_CPP_MIN_LOG_LEVEL", "RETDM_KERAS_TF_LOGS", "RETDM_KERAS_LAZY_IMPORT")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=300, cwd=cwd, env=_env(**extra_env)
    )


def _script() -> str:
    """The installed ``retdm-keras`` console script."""
    script = shutil.which("retdm-keras", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the retdm-keras console script is not installed next to this Python")
    return script


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# The console script itself, run in a fresh interpreter that reports afterwards which of the
# heavy packages it imported (and the exit status); it prints that as the last stdout line.
RUN_SCRIPT = """
import json, runpy, sys
script, *argv = sys.argv[1:]
sys.argv = [script, *argv]
try:
    runpy.run_path(script, run_name="__main__")
    status = None
except SystemExit as exit_:
    status = exit_.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras"})
print(json.dumps({"status": status, "heavy": heavy}))
"""


def _light_calls() -> dict[str, list[str]]:
    registry = str(REPO / "retdm_keras" / "zoo" / "registry.json")
    return {
        "help": ["--help"],
        "train-help": ["train", "--help"],
        "zoo-list": ["zoo", "list", "--registry", registry],
        "usage-error": ["train", "--out", "runs/x", "--no-such-option"],
    }


@pytest.mark.parametrize("call", list(_light_calls()))
def test_console_script_answers_without_tensorflow(call, tmp_path):
    argv = _light_calls()[call]
    if call == "zoo-list":
        argv = [*argv, "--cache-dir", str(tmp_path / "cache")]
    done = _run([sys.executable, "-c", RUN_SCRIPT, _script(), *argv], cwd=tmp_path)
    report = _last_json(done.stdout)
    assert report["heavy"] == [], f"{argv} imported {report['heavy']}\n{done.stderr}"
    if call == "usage-error":
        assert report["status"] == 2
        assert "retdm-keras: error: unrecognized arguments: --no-such-option" in done.stderr
    else:
        assert report["status"] == 0, done.stderr
    if call == "zoo-list":
        assert "scene-features" in done.stdout and "recipe only" in done.stdout
    elif call != "usage-error":
        assert done.stdout.startswith("usage: retdm-keras")


# Every command's --help, the zoo subcommands' and several usage errors through
# retdm_keras_cli.main in one interpreter; then the package stays lazy but complete.
LIGHT_MAIN = """
import contextlib, io, json, os, sys
import retdm_keras_cli

def call(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = retdm_keras_cli.main(argv)
    return {"argv": argv, "status": status, "out": out.getvalue(), "err": err.getvalue()}

results = [call(["--help"])]  # first: this import of retdm_keras is the script's
from retdm_keras.cli import COMMANDS

calls = [[c, "--help"] for c in COMMANDS] + [["zoo", s, "--help"] for s in ("list", "fetch")]
calls += [[], ["no-such-command"], ["predict"], ["export", "m.keras", "--format", "nope"]]
calls += [["predict", "m.keras", "x.png", "--top-k", "many"]]
results += [call(argv) for argv in calls]
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras"})
import retdm_keras
lazy, leaked = retdm_keras._LAZY, os.environ.get("RETDM_KERAS_LAZY_IMPORT")
found = retdm_keras.RETDM.__module__  # a public name, imported on first use
print(json.dumps(dict(results=results, heavy=heavy, lazy=lazy, leaked=leaked, found=found)))
"""


def test_every_help_and_usage_error_skips_tensorflow(tmp_path):
    done = _run([sys.executable, "-c", LIGHT_MAIN], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = _last_json(done.stdout)
    assert report["heavy"] == []
    helps = [r for r in report["results"] if r["argv"][-1:] == ["--help"]]
    assert len(helps) == 1 + 8 + 2
    for result in helps:
        assert result["status"] == 0 and result["out"].startswith("usage: retdm-keras"), result
    errors = [r for r in report["results"] if r["argv"][-1:] != ["--help"]]
    assert len(errors) == 5
    for result in errors:
        assert result["status"] == 2 and "error:" in result["err"], result
    # lazy mode was on for the import only, and the public names still resolve
    assert report["lazy"] is True and report["leaked"] is None
    assert report["found"] == "retdm_keras.model"


# --------------------------------------------------------------------------- #
# commands that load TensorFlow, and loading saved models
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> dict[str, Path]:
    """A tiny saved RETDM (3 named labels, 16×16 images) and one PNG to predict."""
    import keras

    from retdm_keras import RETDM

    folder = tmp_path_factory.mktemp("startup")
    keras.utils.set_random_seed(0)
    model = RETDM(
        3,
        backbone="tiny_cnn",
        image_size=16,
        embed_dim=8,
        label_hidden_units=8,
        label_names=["red", "green", "blue"],
    )
    model(np.zeros((1, 16, 16, 3), "float32"))
    model.save(folder / "tiny.keras")
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(folder / "photo.png")
    return {"model": folder / "tiny.keras", "image": folder / "photo.png"}


def test_tensorflow_start_up_logs_are_quiet(saved_model, tmp_path):
    done = _run(
        [_script(), "predict", str(saved_model["model"]), str(saved_model["image"])], cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert {"red", "green", "blue"} <= set(done.stdout.split())
    noise = [line for line in done.stderr.splitlines() if any(n in line for n in STARTUP_NOISE)]
    assert noise == []


def test_plain_import_registers_the_classes_for_keras(saved_model, tmp_path):
    code = (
        "import sys, retdm_keras, keras\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "assert type(model) is retdm_keras.RETDM, type(model)\n"
        "print(model.label_names)\n"
    )
    done = _run([sys.executable, "-c", code, str(saved_model["model"])], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['red',", "'green',", "'blue']"]


def test_lazy_mode_imports_names_on_first_use(saved_model, tmp_path):
    code = """
import sys
import retdm_keras

heavy = {name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras"}
assert retdm_keras._LAZY and not heavy, heavy
assert set(retdm_keras.__all__) <= set(dir(retdm_keras))
RETDM = retdm_keras.RETDM
from retdm_keras import SDL, fit_stages, zoo  # noqa: F401
try:
    retdm_keras.no_such_name
except AttributeError as err:
    assert "no_such_name" in str(err)
else:
    raise AssertionError("no AttributeError")
retdm_keras.import_all()
import keras

assert type(keras.saving.load_model(sys.argv[1])) is RETDM
print("ok")
"""
    done = _run(
        [sys.executable, "-c", code, str(saved_model["model"])],
        cwd=tmp_path,
        RETDM_KERAS_LAZY_IMPORT="1",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_lazy_names_match_the_eager_imports():
    import importlib

    import retdm_keras

    assert not retdm_keras._LAZY
    assert sorted(retdm_keras._ORIGINS) == sorted(retdm_keras.__all__)
    for name, origin in retdm_keras._ORIGINS.items():
        module = importlib.import_module(f"retdm_keras.{origin}")
        assert getattr(retdm_keras, name) is (module if origin == name else getattr(module, name))


def test_tune_metric_names_match_the_library():
    from retdm_keras.cli import tune
    from retdm_keras.metrics import METRIC_NAMES

    assert tune.METRIC_NAMES == METRIC_NAMES
    assert tune.OBJECTIVE_BASES == (*tune.TRAINING_LOGS[:4], *METRIC_NAMES)


# --------------------------------------------------------------------------- #
# the log switches
# --------------------------------------------------------------------------- #
LOAD_TIME_STDERR = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795977198.035269    2875 port.cc:153] oneDNN custom operations are on.
W0131 13:45:07.123456    2875 loader.cc:12] a warning
E0000 00:00:1795977198.097297    2875 cuda.cc:40] an error
/x/y.py:3: DeprecationWarning: a Python warning
  import z
"""


@pytest.mark.parametrize(
    "level, kept",
    [
        (0, [0, 1, 2, 3, 4, 5]),
        (1, [2, 3, 4, 5]),
        (2, [3, 4, 5]),
        (3, [4, 5]),
    ],
)
def test_drop_startup_noise(level, kept):
    from retdm_keras.cli.startup import drop_startup_noise

    lines = LOAD_TIME_STDERR.splitlines(keepends=True)
    assert drop_startup_noise(LOAD_TIME_STDERR, level) == "".join(lines[i] for i in kept)


def test_tf_log_level_switches(monkeypatch):
    from retdm_keras.cli.startup import tf_log_level

    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    assert tf_log_level() == 2 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's choice is kept
    assert tf_log_level() == 0 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    assert tf_log_level() == 3 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert tf_log_level(debug=True) == 0 and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("RETDM_KERAS_TF_LOGS", "1")
    assert tf_log_level() == 0 and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("RETDM_KERAS_TF_LOGS", "0")
    assert tf_log_level() == 2
