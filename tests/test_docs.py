"""The documentation: the site builds with no warning, the code of the README and the guides
runs, and the README stays short and true to the code.

Code blocks are tested by markers in the Markdown source, invisible on the page:

* ``<!-- test -->`` on the line before a fenced block runs it. The ``python`` blocks of one
  page run in order in one namespace (like a doctest session) in a fresh folder that holds a
  small data set under the names the guides use (``images/``, ``labels.csv``,
  ``split.json``, ``photo.jpg``, ``scene-*.arff``, ``scene.xml``, ``coco80_glove300.json``);
  a ``bash`` block's ``retdm-keras`` lines run through ``retdm_keras.cli.main`` and must exit 0.
  Training is shortened to one epoch per stage and a search to one trial (``TINY``:
  ``epochs=``, ``--epochs``, ``max_trials=`` and ``--max-trials`` arguments, and the epoch
  defaults of ``fit_stages`` and of ``--epochs``); nothing else changes.
* ``<!-- not tested: why -->`` marks a Python block that cannot run here (a cluster, a global
  Keras setting). Every Python block carries one of the two markers.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import data_dir, private_keras_home

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
sys.path.insert(0, str(DOCS / "_gen"))

TEST_MARK = "<!-- test -->"
NOT_TESTED = re.compile(r"<!-- not tested: .+ -->")
FENCE = re.compile(r"^```(\w*)\s*$")
# one epoch per stage and one tuner trial: the only changes made to the documented code
# before it runs (the defaults of fit_stages and of --epochs are shortened by short_training)
TINY_EPOCHS = (1, 1, 1)
TINY = (
    (re.compile(r"epochs=\(\d+, \d+, \d+\)"), "epochs=(1, 1, 1)"),
    (re.compile(r"--epochs \d+ \d+ \d+"), "--epochs 1 1 1"),
    (re.compile(r"max_trials=\d+"), "max_trials=1"),
    (re.compile(r"--max-trials \d+"), "--max-trials 1"),
)
MAX_README_LINES = 250


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str  # the line before the fence


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (top level: fences at the left margin)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        blocks.append(Block(path, start + 1, match.group(1), "\n".join(body), before.strip()))
        i += 1
    return blocks


def documented_pages() -> list[Path]:
    """The README and every page written by hand (method.md included, generated ones not)."""
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "_gen" not in p.parts)]


def pages_with_tests() -> list[Path]:
    return [p for p in documented_pages() if any(b.marker == TEST_MARK for b in code_blocks(p))]


def tiny(code: str) -> str:
    for pattern, replacement in TINY:
        code = pattern.sub(replacement, code)
    return code


def cli_lines(code: str) -> list[list[str]]:
    """The ``retdm-keras`` command lines of a shell block, continuation lines joined."""
    joined = code.replace("\\\n", " ")
    commands = []
    for line in joined.split("\n"):
        line = line.split(" #")[0].strip()
        if not line:
            continue
        words = shlex.split(line)
        assert words[0] == "retdm-keras", f"only retdm-keras commands run in a test block: {line}"
        commands.append(words[1:])
    return commands


# ----------------------------------------------------------------------------- the site
def test_site_builds_strictly(tmp_path):
    """``mkdocs build --strict`` (what ``make docs`` runs; here in this process, which has
    TensorFlow loaded already): any warning — a dead link or anchor, a page missing from the
    navigation, a docstring mkdocstrings cannot read, a recipe field without a description —
    fails the build."""
    import logging

    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    site = tmp_path / "site"
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("mkdocs")
    logger.addHandler(handler)
    try:
        build(load_config(str(REPO / "mkdocs.yml"), site_dir=str(site), strict=True))
    except Abort as err:
        pytest.fail(f"{err}: " + "; ".join(r.getMessage() for r in records))
    finally:
        logger.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]
    cli_page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    import gen_cli

    for name, _, _ in gen_cli.commands(gen_cli.build_parser()):
        assert f"retdm-keras {name}" in cli_page
    import gen_api

    names, _ = gen_api.public_names()
    for name in names:
        assert (site / "reference" / "api" / name / "index.html").is_file(), name
    assert "<!-- BEGIN benchmark results" in (DOCS / "results.md").read_text(encoding="utf-8")
    assert (site / "benchmarks" / "results" / "summary_full" / "index.html").is_file()


def test_cli_reference_has_every_option():
    import gen_cli

    page = gen_cli.render()
    for name, _, parser in gen_cli.commands(gen_cli.build_parser()):
        assert f"## retdm-keras {name}" in page
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page, f"retdm-keras {name} {option}"


def test_recipe_reference_explains_every_field():
    import gen_recipes

    assert gen_recipes.problems() == []


def test_the_full_recipe_example_writes_every_field():
    """The guide's recipe is valid and sets every model and training field, and every field
    of its data format."""
    from retdm_keras.recipes import ModelSpec, Recipe, TrainingSpec, schema

    (block,) = [b for b in code_blocks(DOCS / "guides" / "zoo-and-recipes.md") if b.lang == "yaml"]
    config = yaml.safe_load(block.code)
    recipe = Recipe.from_dict(config, source="zoo-and-recipes.md")
    assert set(config["model"]) == {f.name for f in dataclasses.fields(ModelSpec)}
    assert set(config["training"]) == {f.name for f in dataclasses.fields(TrainingSpec)}
    assert set(config["data"]) - {"format"} == set(schema._DATA_FIELDS[recipe.data.format])


def test_every_python_block_is_tested_or_says_why_not():
    untested = [
        f"{b.path.relative_to(REPO)}:{b.line}"
        for page in documented_pages()
        if page.name != "method.md"
        for b in code_blocks(page)
        if b.lang == "python" and b.marker != TEST_MARK and not NOT_TESTED.fullmatch(b.marker)
    ]
    assert not untested, f"Python blocks without {TEST_MARK} or '<!-- not tested: why -->'"


# ----------------------------------------------------------------------------- the README
def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _table(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_readme_is_short_and_starts_with_the_task():
    text = _readme()
    assert len(text.splitlines()) <= MAX_README_LINES
    first = text.split("\n## ")[0]
    assert "multi-label image classification" in first.lower()
    assert text.index("## Install") < text.index("## Quick start") < text.index("## Results")
    for section in ("Data formats", "Command line", "Model zoo", "Citation", "Licence"):
        assert f"\n## {section}\n" in text
    assert "Apache-2.0" in text and "license = Apache-2.0" in (REPO / "setup.cfg").read_text()


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_resolve():
    text = _readme()
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in anchors, f"README: no heading for #{anchor}"
            continue
        assert (REPO / path).exists(), f"README links to {path}, which does not exist"
        if anchor and path.endswith(".md"):
            page = (REPO / path).read_text(encoding="utf-8")
            headings = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", page, flags=re.M)}
            assert anchor in headings, f"README: {path} has no heading for #{anchor}"


def test_readme_command_table_names_every_command():
    from retdm_keras.cli import COMMANDS

    rows = _table(_readme(), "| command |")
    assert [row[0] for row in rows] == [f"`retdm-keras {name}`" for name in COMMANDS]


def test_readme_zoo_table_matches_the_packaged_entries():
    from retdm_keras import zoo

    published = {r["name"]: r for r in zoo.list_models() if r["status"] != "recipe only"}
    rows = {row[0].strip("`"): row for row in _table(_readme(), "| name | what |")}
    assert set(rows) == set(published)
    for name, row in rows.items():
        metrics = published[name]["metrics"]
        for cell, metric in zip(row[2:5], ("average_precision", "mAP", "O-F1"), strict=True):
            assert cell == f"{metrics[metric]:.3f}", (name, metric)
        folder = REPO / "retdm_keras" / "zoo" / "entries" / name / str(published[name]["version"])
        size = sum(f.stat().st_size for f in folder.iterdir())
        assert row[5] == f"{size / 1e6:.1f} MB", name


def test_readme_results_come_from_the_results_page():
    """Every figure of the README's results table is in the generated block of
    docs/results.md (rewritten by `make bench`): update the README when that block changes."""
    page = (DOCS / "results.md").read_text(encoding="utf-8")
    block = page[page.index("<!-- BEGIN benchmark") : page.index("<!-- END benchmark")]
    for row in _table(_readme(), "| data | method |"):
        for cell in row[2:]:
            value = cell.strip("*")
            assert f"{value} ±" in block, f"README results: {row[1]} {value} not in results.md"


# ----------------------------------------------------------------------------- the code
@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    """One private KERAS_HOME for every page (the ImageNet weights linked from the shared
    data; converted backbones and features cached once)."""
    data = data_dir()
    if not (data / "keras_home" / "models").is_dir() or not (data / "miml_scene").is_dir():
        pytest.skip(f"the shared data (ImageNet weights, MIML scene) is not at {data}")
    return private_keras_home(data, tmp_path_factory.mktemp("docs-keras-home"))


def _arff_head(source: Path, target: Path, rows: int) -> None:
    """The header and the first ``rows`` data rows of an ARFF file."""
    out, seen, in_data = [], 0, False
    for line in source.read_text(encoding="utf-8").splitlines():
        if in_data and line.strip() and not line.startswith("%"):
            if seen == rows:
                break
            seen += 1
        out.append(line)
        in_data = in_data or line.strip().lower() == "@data"
    target.write_text("\n".join(out) + "\n", encoding="utf-8")


def make_workspace(folder: Path) -> None:
    """The small data set the guides' code reads, under the names the guides use."""
    data = data_dir()
    miml = data / "miml_scene"
    with open(miml / "labels.csv", newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    chosen = rows[::100][:20]  # the CSV is ordered by label: every 100th row spans them all
    (folder / "images").mkdir()
    for row in chosen:
        shutil.copy(miml / "images" / row[0], folder / "images" / row[0])
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *chosen])
    names = [row[0] for row in chosen]
    split = {"train": names[:14], "val": names[14:18], "test": names[18:]}
    (folder / "split.json").write_text(json.dumps(split), encoding="utf-8")
    shutil.copy(miml / "images" / names[-1], folder / "photo.jpg")
    mulan = data / "mulan" / "scene"
    _arff_head(mulan / "scene-train.arff", folder / "scene-train.arff", 120)
    _arff_head(mulan / "scene-test.arff", folder / "scene-test.arff", 80)
    shutil.copy(mulan / "scene.xml", folder / "scene.xml")
    shutil.copy(data / "label_vectors" / "coco80_glove300.json", folder / "coco80_glove300.json")


@pytest.fixture
def short_training(monkeypatch):
    """``fit_stages`` and ``retdm-keras train --epochs`` default to one epoch per stage."""
    from retdm_keras.recipes import TrainingSpec
    from retdm_keras.training import fit_stages

    defaults = list(fit_stages.__defaults__)
    epochs_at = list(inspect.signature(fit_stages).parameters).index("epochs")
    defaults[epochs_at - (fit_stages.__code__.co_argcount - len(defaults))] = TINY_EPOCHS
    monkeypatch.setattr(fit_stages, "__defaults__", tuple(defaults))
    monkeypatch.setattr(TrainingSpec, "epochs", TINY_EPOCHS)  # the parser's --epochs default


@pytest.mark.parametrize("page", pages_with_tests(), ids=lambda p: str(p.relative_to(REPO)))
def test_page_code_runs(page, keras_home, short_training, tmp_path, monkeypatch):
    import retdm_keras  # noqa: F401  (registers the Keras classes, as a user's import does)
    from retdm_keras.cli import main

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    make_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for block in code_blocks(page):
        if block.marker != TEST_MARK:
            continue
        where = f"{page.relative_to(REPO)}:{block.line}"
        code = tiny(block.code)
        if block.lang == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the page's own code
        elif block.lang == "bash":
            for argv in cli_lines(code):
                assert main(argv) == 0, f"{where}: retdm-keras {shlex.join(argv)}"
        else:
            raise AssertionError(f"{where}: a {block.lang or 'plain'} block cannot run")
