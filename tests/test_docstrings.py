"""No public docstring or CLI help string holds benchmark figures (issue #30, part 4).

A docstring says what a name or parameter does, its default, and where the evidence is
(``docs/method.md``, by section); the measurements themselves live in ``docs/method.md``.
This test reads with ``ast`` (without importing them) every module under ``retdm_keras/``
and ``retdm_keras_cli/``:

* the module docstrings;
* the docstrings of public classes, functions and methods (names without a leading
  underscore, plus ``__init__`` and ``__call__``) and of public attributes (a string literal
  right after a module- or class-level assignment to a public name);

and, from the real ``retdm-keras`` argument parser (what the CLI reference is generated
from), every description, epilog, command help and option help.

Doctest examples (``>>>`` lines, their ``...`` continuations and their expected output, up
to the next blank line) are left out: their numbers are outputs that the doctests check.

A text is flagged when its prose holds one of the ``FIGURE_RULES``:

* a decimal with four or more fractional digits and at least two significant ones
  (``0.9611``; defaults such as ``0.0003`` or ``1e-4`` have one);
* a decimal with two or more fractional digits, or a percentage, within 40 characters of a
  metric name (``AP 0.931``, ``mAP ... 95 %``);
* measured values side by side (``0.923 / 0.914``);
* two numbers compared (``0.9611 vs 0.9585``, ``3.5 → 4.9``, ``42 s against 119 s``);
* a timing or throughput (``13 ms``, ``183 s``, ``184 images/s``, ``4× faster``);
* a relative change (``19% fewer images``);
* a date (``2026-11-30``: history);
* a measured approximation (``≈ 10×``);
* a result told in words: a metric name followed by a comparison (``its mean AP was higher
  on all eight``), ``scored higher than``, ``in our runs``.

Each rule is also run on synthetic texts, offending and legitimate, so that a rule that
cannot fail, or one that flags defaults, is noticed. ``PENDING`` names the docstrings that
another change is rewriting; nothing else is exempt.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("retdm_keras", "retdm_keras_cli")
PUBLIC_DUNDERS = frozenset({"__init__", "__call__"})

_METRIC = r"(?:\bm?AP\b|\b[CO]-F1\b|\bF1\b|\baccuracy\b|\baverage precision\b)"
_DECIMAL_2 = r"\d+\.\d{2,}"
_PERCENT = r"\d+(?:\.\d+)?\s?%"
_NUMBER = r"\d+(?:[.,]\d+)*"
# three or more fractional digits, at least two of them significant: 0.923, 0.0123 (not
# 0.001, 0.100)
_MEASURED = r"(?<![\w.])\d+\.(?=\d{3,}\b)0*[1-9]\d*[1-9]\d*\b"

FIGURE_RULES: dict[str, re.Pattern[str]] = {
    # four or more fractional digits, at least two of them significant: 0.9611, 0.0123
    "a measured decimal": re.compile(r"(?<![\w.])\d+\.(?=\d{4,}\b)0*[1-9]\d*[1-9]\d*\b"),
    "a metric with a figure": re.compile(
        rf"{_METRIC}.{{0,40}}?(?<![\w.])(?:{_DECIMAL_2}|{_PERCENT})"
        rf"|(?<![\w.])(?:{_DECIMAL_2}|{_PERCENT}).{{0,40}}?{_METRIC}"
    ),
    # measured values side by side: 0.923 / 0.914 (not rates such as 0.01 / 0.001)
    "a row of figures": re.compile(rf"{_MEASURED}\s?/\s?{_MEASURED}"),
    "two figures compared": re.compile(
        rf"(?<![\w.]){_NUMBER}\s?(?:%|ms|s)?\s?(?:→|->|\bvs\b\.?|\bversus\b|\bagainst\b)"
        rf"\s?{_NUMBER}(?![\w)\]])"
    ),
    "a timing": re.compile(
        r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|µs|μs|ns)\b"
        r"|(?<![\w.])\d+(?:[.,]\d+)?\s(?:s|min|minutes|seconds|h|hours)\b(?![\w'-])"
        r"|\b(?:images|samples|steps|rows|it)/s\b"
        r"|\d\s?[×x]\s(?:faster|slower|quicker)\b"
    ),
    "a relative change": re.compile(
        r"(?<![\w.])\d+(?:\.\d+)?\s?%\s(?:fewer|more|less|faster|slower|higher|lower|better"
        r"|worse|smaller|larger)\b"
    ),
    "a date": re.compile(r"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b"),
    "a measured approximation": re.compile(r"≈\s?\d"),
    "a result in words": re.compile(
        rf"{_METRIC}[^.;:]{{0,40}}\b(?:was|were|is|are|went|got)\s+"
        r"(?:higher|lower|better|worse|up|down)\b"
        r"|\bscor(?:ed|es)\s+(?:higher|lower|better|worse)\s+than\b"
        r"|\bin our (?:runs|experiments|measurements)\b"
    ),
}

# "higher is better" names a metric's direction; it reports nothing
_DIRECTION = re.compile(r"\b(?:higher|lower|smaller|larger) is better\b")


def prose(text: str) -> str:
    """``text`` without its doctest examples, as one line (line breaks become spaces)."""
    kept, in_example = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
        elif not stripped:
            in_example = False
        if not in_example:
            kept.append(stripped)
    return " ".join(" ".join(kept).split())


def figures(text: str) -> list[tuple[str, str]]:
    """``(rule, matched text)`` of every figure in the prose of ``text``."""
    body = _DIRECTION.sub("", prose(text))
    return [
        (rule, m.group(0)) for rule, pattern in FIGURE_RULES.items() for m in pattern.finditer(body)
    ]


def _is_public(name: str) -> bool:
    return not name.startswith("_") or name in PUBLIC_DUNDERS


def _attribute_docstrings(body: list[ast.stmt]) -> Iterator[tuple[str, str]]:
    for node, following in zip(body, body[1:], strict=False):
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        if not (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "_") for t in targets]
        if any(_is_public(n) for n in names):
            yield names[0], following.value.value


def _definitions(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, str]]:
    yield from ((f"{prefix}{n}", d) for n, d in _attribute_docstrings(body))
    for node in body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if not _is_public(node.name):
                continue
            docstring = ast.get_docstring(node, clean=True)
            if docstring:
                yield f"{prefix}{node.name}", docstring
            if isinstance(node, ast.ClassDef):
                yield from _definitions(node.body, f"{prefix}{node.name}.")


def public_docstrings(source: str, module: str) -> Iterator[tuple[str, str]]:
    """``(where, docstring)`` of a module, its public definitions and public attributes."""
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=True)
    if docstring:
        yield module, docstring
    yield from _definitions(tree.body, f"{module}:")


def library_docstrings() -> Iterator[tuple[str, str]]:
    for package in LIBRARY:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            yield from public_docstrings(path.read_text(encoding="utf-8"), module)


def parser_texts(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str]]:
    """``(where, text)`` of every description, epilog and help of ``parser``, recursively."""
    for what in ("description", "epilog"):
        text = getattr(parser, what)
        if text:
            yield f"{path} ({what})", text
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.help:
                    yield f"{path} {choice.dest} (help)", choice.help
            for name, sub in action.choices.items():
                yield from parser_texts(sub, f"{path} {name}")
        elif action.help and action.help is not argparse.SUPPRESS:
            option = "/".join(action.option_strings) or action.dest
            yield f"{path} {option}", action.help


def _report(found: list[tuple[str, list[tuple[str, str]]]]) -> str:
    lines = [f"{where}: {rule}: {text!r}" for where, hits in found for rule, text in hits]
    return (
        "benchmark figures in public docstrings or CLI help (move them to docs/method.md and "
        "point to its section instead):\n" + "\n".join(lines)
    )


# Docstrings that another change owns and rewrites; remove an entry once its figures are gone.
PENDING: set[str] = set()


def test_no_public_docstring_holds_benchmark_figures():
    found = [
        (where, hits)
        for where, text in library_docstrings()
        if where not in PENDING and (hits := figures(text))
    ]
    assert not found, _report(found)


def test_no_cli_help_holds_benchmark_figures():
    from retdm_keras.cli import PROG, build_parser

    texts = list(parser_texts(build_parser(), PROG))
    assert len(texts) > 50  # every command's options were reached
    found = [(where, hits) for where, text in texts if (hits := figures(text))]
    assert not found, _report(found)


# Texts each rule must flag: the kinds of lab notes the docstrings held before.
OFFENDING = {
    "a measured decimal": "AP 0.9611 with the plain view",
    "a metric with a figure": "validation mAP 0.935 with frozen statistics",
    "two figures compared": "the joint stage: 3.5 → 4.9 with the gradient",
    "a timing": "the heads run in 13 ms for one image",
    "a row of figures": "seed 0: 0.923 / 0.914 / 0.783",
    "a relative change": "at 4 views, 19% fewer images through the backbone",
    "a date": "chosen on validation data (2026-11-30)",
    "a measured approximation": "the metric term, ≈ 10× BCE in size",
    "a result in words": "on held-out rows of eight kinds of feature data its mean AP was higher",
}


@pytest.mark.parametrize("rule", sorted(FIGURE_RULES))
def test_each_rule_flags_a_figure(rule):
    assert rule in OFFENDING, f"no offending example for {rule!r}"
    hits = figures(f"Args:\n    x: a parameter ({OFFENDING[rule]}).")
    assert rule in {r for r, _ in hits}, (rule, hits)


@pytest.mark.parametrize(
    "text",
    [
        "0.9611 vs 0.9585 on the validation split",
        "in 42 s against 119 s",
        "244 images/s in chunks of 16",
        "4× faster for 1,400 samples",
        "These checks cost about 0.1 s per 2,000 JPEGs.",
        "validation AP rose by 2 % over BCE",
        "frozen RETDM scored higher than fine-tuned RETDM",
        "joint training diverged to NaN in our runs",
    ],
)
def test_more_lab_notes_are_flagged(text):
    assert figures(text)


def test_a_synthetic_module_with_a_lab_note_fails():
    source = '''
"""A module."""

RATE = 3e-4
"""Adam's rate (on MULAN scene: AP 0.8901 against 0.8887 with SGD)."""


class Model:
    """A model.

    Args:
        skip: the linear path (default True).
    """

    def fit(self):
        """Fit (13 ms a step)."""


def _private():
    """Took 11 ms (private: not checked)."""
'''
    hits = {where: figures(text) for where, text in public_docstrings(source, "m.py")}
    assert {where for where, found in hits.items() if found} == {"m.py:RATE", "m.py:Model.fit"}


@pytest.mark.parametrize(
    "text",
    [
        'Default 0.5 (see ``docs/method.md``, "Predictions that use the metric").',
        "SGD (momentum 0.9, weight decay 1e-4) at 0.01 / 0.01 / 0.001 per stage.",
        "Adam at 3e-4 / 3e-4 / 3e-5 and decoupled weight decay 3.",
        "default: 0.01 0.01 0.001 with SGD for images, 0.0003 0.0003 0.00003 with Adam",
        "``mAP`` (higher is better): averaged over labels; ``hamming_loss`` (lower is better)",
        "crop scales (1.0, 0.875, 0.75, 0.66); the crop is a square",
        "``train[:70%]`` / ``train[70%:80%]`` / ``train[80%:]`` are random, disjoint subsets",
        "10 % of train held out for validation",
        "images (B, H, W, 3) -> features (B, D); raw pixels in [0, 255] -> probabilities",
        "the 12 metrics; C-F1 is the harmonic mean of C-P and C-R; threshold 0.5",
        "'train' holds out 0.2 by default, to choose the tuned baseline's share",
        "each step shrinks the weights by 0.09 %",
        "a speed-up above 1 means faster than Keras",
        "Example:\n\n>>> round(score, 4)\n0.9611\n>>> timings\n{'ms': 13.0, 'AP': 0.95}\n",
        "From 2,000 sets up; at most 8 files; 82,081 train / 40,137 test images remain.",
    ],
)
def test_legitimate_text_is_not_flagged(text):
    assert figures(text) == []
