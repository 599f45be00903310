"""The benchmark block of docs/results.md is generated from the committed result JSON, and
stays so."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

bench_report = pytest.importorskip("bench_report")
RESULTS = REPO / "benchmarks" / "results"


def test_results_page_block_matches_committed_full_results():
    page = (REPO / "docs" / "results.md").read_text()
    assert page.count(bench_report.README_BEGIN) == 1
    assert page.count(bench_report.README_END) == 1
    start = page.index(bench_report.README_BEGIN)
    stop = page.index(bench_report.README_END) + len(bench_report.README_END)
    expected = bench_report.readme_block(RESULTS, "full")
    assert page[start:stop] == expected, (
        "docs/results.md's benchmark block is stale: run "
        "`.venv/bin/python benchmarks/run.py --only summary`"
    )


@pytest.fixture
def quick_as_full(tmp_path):
    """The committed quick results renamed as a full run, in a scratch results folder."""
    for name in ("miml", "mulan", "frozen", "cost"):
        shutil.copy(RESULTS / f"{name}_quick.json", tmp_path / f"{name}_full.json")
    return tmp_path


def _frozen_part(block: str) -> str:
    start = block.index("**MIML scene images, frozen backbone**")
    return block[start : block.index("**MIML scene images, fine-tuned backbone**", start)]


def test_frozen_block_reports_the_ablations_wins_and_convergence(quick_as_full):
    """Every number the frozen part prints is recomputed here from the per-seed values."""
    import json

    frozen = json.loads((quick_as_full / "frozen_full.json").read_text())
    methods = frozen["methods"]
    text = _frozen_part(bench_report.readme_block(quick_as_full, "full"))

    def mean_std(name, metric):
        values = methods[name]["test"][metric]["values"]
        return np.mean(values), np.std(values, ddof=1)

    # the table: the two ablation columns, with their numbers
    header = next(line for line in text.splitlines() if line.startswith("| metric |"))
    assert header.split(" | ")[1:] == [
        "linear probe", "BCE", "RETDM one-way", "**RETDM**", "RETDM no-rec |"
    ]  # fmt: skip
    for name in ("retdm_one_way", "retdm_no_rec"):
        for metric in ("average_precision", "mAP", "O-F1"):
            assert "{:.4f} ± {:.4f}".format(*mean_std(name, metric)) in text
    # wins over BCE on the paper's 11 metrics (mAP excluded), and which exceed the spread
    lower = {"hamming_loss", "ranking_loss", "one_error", "coverage"}
    won, clear = [], []
    for metric in bench_report.PAPER_METRICS:
        (a, sa), (b, sb) = mean_std("retdm", metric), mean_std("bce", metric)
        if (a < b) if metric in lower else (a > b):
            won.append(metric)
            if abs(a - b) > max(sa, sb):
                clear.append(f"{metric} ({a - b:+.4f}, std {max(sa, sb):.4f})")
    assert "mAP" not in bench_report.PAPER_METRICS and len(bench_report.PAPER_METRICS) == 11
    assert (
        f"RETDM beats BCE on {len(won)} of the paper's 11 metrics here ({', '.join(won)}); "
        f"on {len(clear)} of them the gap of the means exceeds the larger of the two seed stds"
    ) in text
    for item in clear:
        assert item in text
    # RETDM vs the probe on AP and mAP
    for metric in ("average_precision", "mAP"):
        retdm, probe = mean_std("retdm", metric), mean_std("linear_probe", metric)
        assert (
            f"{metric} {retdm[0]:.4f} ± {retdm[1]:.4f} vs {probe[0]:.4f} ± {probe[1]:.4f}" in text
        )
    # the convergence line: first and last epoch of the mean train metric loss, and chance
    for name, label in (
        ("retdm", "RETDM"), ("retdm_one_way", "RETDM one-way"), ("retdm_no_rec", "RETDM no-rec")
    ):  # fmt: skip
        runs = methods[name]["history"]
        assert len(runs) == len(frozen["seeds"])
        series = np.mean(
            [run["stages"]["metric"]["metric_loss"] + run["stages"]["joint"]["metric_loss"]
             for run in runs],
            axis=0,
        )  # fmt: skip
        alpha = methods[name]["params"]["alpha"]
        chance = (1 + alpha) * np.log(1 + 10)  # margin 0, K = 10 real neighbours (MIML: 20 sets)
        assert methods[name]["metric_loss_chance"]["value"] == pytest.approx(chance, rel=1e-5)
        assert f"{label} {series[0]:.3f} → {series[-1]:.3f} (chance {chance:.3f})" in text
    png = "convergence_frozen_full.png"
    assert f"[`{png}`](benchmarks/results/{png})" in text


def test_frozen_block_without_the_new_fields_still_renders(tmp_path, quick_as_full):
    """Results from before the ablations (no one-way / no-rec rows, no histories)."""
    import json

    frozen = json.loads((quick_as_full / "frozen_full.json").read_text())
    for name in ("retdm_one_way", "retdm_no_rec"):
        del frozen["methods"][name]
    for entry in frozen["methods"].values():
        entry.pop("history", None)
        entry.pop("metric_loss_chance", None)
    (quick_as_full / "frozen_full.json").write_text(json.dumps(frozen))
    text = _frozen_part(bench_report.readme_block(quick_as_full, "full"))
    assert "| metric | linear probe | BCE | **RETDM** |" in text
    assert "one-way" not in text and "convergence_frozen" not in text
    assert "RETDM beats BCE on" in text and "RETDM vs linear probe:" in text


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


def _entry(**means):
    return {"test": {m: {"mean": v, "std": 0.0} for m, v in means.items()}}


def test_classical_baselines_sentence_names_who_is_beaten_on_both_metrics():
    result = {
        "methods": {
            "retdm": _entry(average_precision=0.86, ranking_loss=0.075),
            "br_lr": _entry(average_precision=0.85, ranking_loss=0.080),  # worse on both
            "mlknn": _entry(average_precision=0.87, ranking_loss=0.090),  # better AP
        }
    }
    (line, blank) = bench_report.classical_lines(result)
    assert blank == ""
    assert "average_precision 0.8600 vs BR-LR 0.8500, ML-kNN 0.8700" in line
    assert "ranking_loss 0.0750 vs BR-LR 0.0800, ML-kNN 0.0900" in line
    assert line.endswith("RETDM beats BR-LR on both metrics.")
    result["methods"]["retdm"] = _entry(average_precision=0.80, ranking_loss=0.1)
    assert bench_report.classical_lines(result)[0].endswith("beats none of them on both.")
    del result["methods"]["br_lr"], result["methods"]["mlknn"]
    assert bench_report.classical_lines(result) == []


def test_defaults_page_reports_means_gaps_and_shares():
    """``bench_report_defaults.report``: means ± sample std over seeds, the gap to BR-LR in
    units of that std, the chosen shares, per-seed rows; numbers from a hand-made result."""
    report = pytest.importorskip("bench_report_defaults").report

    def scores(ap, m_ap):
        return {"average_precision": ap, "mAP": m_ap}

    result = {
        "seeds": [0, 1],
        "sets": {
            "enron": {
                "retdm": [scores(0.70, 0.26), scores(0.72, 0.24)],
                "retdm_alone": [scores(0.68, 0.22), scores(0.66, 0.20)],
                "bce": [scores(0.69, 0.25), scores(0.71, 0.25)],
                "baseline": [{"weight": 0.8}, {"weight": 1.0}],
                "seconds": {"retdm": [30.0, 34.0]},
                "br_lr": {"test": scores(0.705, 0.25)},
                "mlknn": {"test": scores(0.63, 0.15)},
            }
        },
    }
    page = report(result)
    ap_row = next(line for line in page.splitlines() if "| AP |" in line)
    std = float(np.std([0.70, 0.72], ddof=1))
    assert f"{0.71:.4f} ± {std:.4f}" in ap_row
    assert f"{0.71 - 0.705:+.4f} ({(0.71 - 0.705) / std:+.1f})" in ap_row
    assert "0.8 / 1" in ap_row and "| 32 |" in ap_row
    assert "| enron | retdm_alone | 0.6800 / 0.2200 | 0.6600 / 0.2000 |" in page
