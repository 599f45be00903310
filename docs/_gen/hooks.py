"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``): the pages generated from the code.

* ``reference/cli.md`` from the ``retdm-keras`` argument parsers (``gen_cli``);
* ``reference/recipes.md`` from the recipe schema (``gen_recipes``);
* ``reference/api/*.md``, one mkdocstrings page per name of ``retdm_keras.__all__``
  (``gen_api``), listed in the navigation in place of ``reference/api/index.md``;
* ``benchmarks/results/*``: the summaries and plots ``make bench`` writes, published beside
  ``results.md`` so that the links of its generated block resolve on the site.

Nothing is written into ``docs/``: the pages exist only in the built site.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).parent))

import gen_api  # noqa: E402
import gen_cli  # noqa: E402
import gen_recipes  # noqa: E402

log = logging.getLogger("mkdocs.hooks.retdm_docs")

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
# what docs/results.md and the pages it links to need from benchmarks/results
RESULT_FILES = ("summary_full.md", "zero_shot_coco.md", "*_full.png")
API_INDEX = f"{gen_api.FOLDER}/index.md"


def _api_nav(entry):
    """The navigation with ``Title: reference/api/index.md`` expanded into a section: the
    index, then one page per public name (a section already expanded is left as it is)."""
    if isinstance(entry, list):
        return [_api_nav(item) for item in entry]
    if isinstance(entry, dict):
        names, _ = gen_api.public_names()
        section = [API_INDEX] + [{name: gen_api.page_path(name)} for name in names]
        return {k: section if v == API_INDEX else _api_nav(v) for k, v in entry.items()}
    return entry


def on_config(config):
    if config.nav is not None:
        config.nav = _api_nav(config.nav)
    return config


def on_files(files: Files, config) -> Files:
    for problem in gen_recipes.problems():
        log.warning(f"recipe reference: {problem} (edit {gen_recipes.FIELDS_FILE.name})")
    generated = {gen_cli.PAGE: gen_cli.render(), gen_recipes.PAGE: gen_recipes.render()}
    generated.update(gen_api.pages())
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    for pattern in RESULT_FILES:
        for source in sorted(RESULTS.glob(pattern)):
            uri = f"benchmarks/results/{source.name}"
            files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
