"""The Hypothesis profiles of ``tests/conftest.py``: derandomized when ``CI`` is set.

CI must run the same examples on every run (issue #12: ``make test`` failed on a random
example); local runs keep exploring new ones. The profile is chosen in ``conftest.py`` at
import, so a test's own ``@settings(...)`` inherits it unless it sets ``derandomize`` (or
``database`` or a ``parent``) itself, which no test here may do.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import hypothesis_profile
from hypothesis import settings

TESTS = Path(__file__).resolve().parent

# run by a child pytest with a copy of conftest.py: the examples a test gets in two runs
# (pytest's, then a direct call), and whether its own @settings, built at import like every
# test module's, ended up derandomized
INNER_TEST = """
import json, os
from hypothesis import given, settings, strategies as st

SEEN = []

@settings(max_examples=20, deadline=None)
@given(st.integers(), st.lists(st.integers(0, 9), max_size=5))
def test_inner(number, digits):
    SEEN.append([number, digits, settings().derandomize])

def test_report():
    first = list(SEEN)
    SEEN.clear()
    test_inner()
    with open(os.environ["INNER_REPORT"], "w") as fh:
        json.dump({"profile": settings._current_profile, "runs": [first, SEEN]}, fh)
"""


def run_inner(tmp_path: Path, run: str, **env: str) -> dict:
    folder = tmp_path / run
    folder.mkdir()
    shutil.copy(TESTS / "conftest.py", folder / "conftest.py")
    (folder / "test_inner.py").write_text(INNER_TEST, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    environ.update(env, INNER_REPORT=str(folder / "report.json"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def test_profile_choice_from_the_environment() -> None:
    assert hypothesis_profile({"CI": "true"}) == "ci"
    assert hypothesis_profile({"CI": "1"}) == "ci"
    assert hypothesis_profile({}) == "dev"
    assert hypothesis_profile({"CI": ""}) == "dev"
    assert hypothesis_profile({"CI": "false"}) == "dev"
    assert hypothesis_profile({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}) == "dev"
    assert hypothesis_profile({"HYPOTHESIS_PROFILE": "ci"}) == "ci"
    ci, dev = settings.get_profile("ci"), settings.get_profile("dev")
    assert ci.derandomize is True and ci.database is None
    assert ci.deadline is None and ci.print_blob is True
    assert dev.derandomize is False


def test_with_ci_set_the_loaded_profile_is_derandomized(tmp_path: Path) -> None:
    report = run_inner(tmp_path, "ci", CI="true")
    first, second = report["runs"]
    assert report["profile"] == "ci"
    assert first and all(derandomized for *_, derandomized in first + second)
    assert second == first  # derandomized: the same examples on every run
    # without CI, exploration stays random: new examples on each run
    report = run_inner(tmp_path, "local")
    first, second = report["runs"]
    assert report["profile"] == "dev"
    assert first and not any(derandomized for *_, derandomized in first + second)
    assert second != first


def test_this_session_and_its_tests_use_the_environment_profile(
    request: pytest.FixtureRequest,
) -> None:
    # pytest's --hypothesis-profile, else the environment (CI, HYPOTHESIS_PROFILE)
    name = request.config.getoption("hypothesis_profile", None) or hypothesis_profile(os.environ)
    expected = settings.get_profile(name)
    assert settings.default.derandomize == expected.derandomize
    if name == "ci":
        assert settings.default.derandomize  # CI runs are reproducible
    for item in request.session.items:
        test = getattr(item, "obj", None)
        if getattr(test, "is_hypothesis_test", False):
            own = test._hypothesis_internal_use_settings
            assert own.derandomize == expected.derandomize, item.nodeid


def test_no_test_settings_override_the_profile_randomness() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            where = f"{path.relative_to(TESTS)}:{node.lineno}"
            if name == "settings":
                keys = {k.arg for k in node.keywords}
                if node.args or keys & {"derandomize", "database", "parent"}:
                    offenders.append(where)
            elif name in ("load_profile", "register_profile") and path.name != "conftest.py":
                offenders.append(where)
    assert not offenders, f"@settings that override the Hypothesis profile: {offenders}"
