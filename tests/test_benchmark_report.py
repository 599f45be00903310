"""The README's benchmark block is generated from the committed result JSON, and stays so."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

bench_report = pytest.importorskip("bench_report")
RESULTS = REPO / "benchmarks" / "results"


def test_readme_block_matches_committed_full_results():
    readme = (REPO / "README.md").read_text()
    assert readme.count(bench_report.README_BEGIN) == 1
    assert readme.count(bench_report.README_END) == 1
    start = readme.index(bench_report.README_BEGIN)
    stop = readme.index(bench_report.README_END) + len(bench_report.README_END)
    expected = bench_report.readme_block(RESULTS, "full")
    assert readme[start:stop] == expected, (
        "README.md's benchmark block is stale: run "
        "`.venv/bin/python benchmarks/run.py --only summary`"
    )


@pytest.fixture
def quick_as_full(tmp_path):
    """The committed quick results renamed as a full run, in a scratch results folder."""
    for name in ("miml", "mulan", "cost"):
        shutil.copy(RESULTS / f"{name}_quick.json", tmp_path / f"{name}_full.json")
    return tmp_path


def test_update_readme_replaces_only_the_block(tmp_path, quick_as_full):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro text\n\n", "\n\n## Next section\nkept\n"
    readme.write_text(
        before + bench_report.README_BEGIN + "\nold numbers\n" + bench_report.README_END + after
    )
    assert bench_report.update_readme(readme, quick_as_full, "full") is True
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after)
    assert "old numbers" not in text
    # the numbers come from the JSON: recompute one mean independently
    import json

    miml = json.loads((quick_as_full / "miml_full.json").read_text())
    values = miml["methods"]["retdm"]["test"]["average_precision"]["values"]
    assert f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" in text
    mulan = json.loads((quick_as_full / "mulan_full.json").read_text())
    values = mulan["methods"]["bce"]["test"]["O-F1"]["values"]
    assert f"{np.mean(values):.4f}" in text
    # a second run changes nothing
    assert bench_report.update_readme(readme, quick_as_full, "full") is False


def test_update_readme_without_markers_names_the_file(tmp_path, quick_as_full):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    with pytest.raises(ValueError, match="README.md: the results markers are missing"):
        bench_report.update_readme(readme, quick_as_full, "full")
    assert readme.read_text() == "# no markers here\n"


def test_block_without_results_says_so(tmp_path):
    block = bench_report.readme_block(tmp_path, "full")
    assert "No full benchmark results yet" in block
    assert block.startswith(bench_report.README_BEGIN)
    assert block.endswith(bench_report.README_END)
