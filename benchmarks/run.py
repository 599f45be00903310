"""RETDM benchmarks (issue #3): accuracy on MIML scene images and MULAN scene features,
sensitivity to λ and μ, convergence, and cost — JSON, a Markdown summary and PNG plots.

Sections (``--only``; default all):

* ``miml``  — MIML scene images, canonical split: linear probe, BCE, RETDM one-way / full /
  no reconstruction, C2AE, ML-kNN with the same MobileNetV2 (ImageNet) backbone; λ × μ grid
  on the validation split; the test table over ``--seeds``.
* ``mulan`` — the same table for the MULAN scene features with the ``"mlp"`` backbone.
* ``frozen`` — MIML with the backbone frozen (``make demo``'s configuration): a cold-cache
  end-to-end run, linear probe / BCE / RETDM one-way / full / no reconstruction over
  ``--seeds`` (with the metric loss per epoch), extraction images/s and the train step frozen
  vs fine-tuning.
* ``cost``  — train-step time ratios, LabelNeighbors build time / peak memory, inference
  throughput / peak memory, Keras vs ONNX Runtime vs TFLite latency.
* ``runtime`` — the backbone in ONNX Runtime vs Keras: extraction images/s against
  ``keras.Model.predict``, feature parity, ``predict`` latency at batch 1 and 32, and (full)
  ``make demo`` / ``train --recipe scene`` wall time from empty caches, before and after.
* ``defaults`` — ``retdm-keras train`` with default options, as a user runs it, on MIML
  scene, UC Merced and the five MULAN sets (scene, enron, bibtex, corel5k, tmc2007): RETDM
  (the tuned baseline mixed in at the share chosen on validation data), the same model alone,
  BCE, the tuned BR-LR and ML-kNN (``bench_defaults.py``; page ``defaults_<mode>.md``); the
  quick run does MULAN scene and enron.
* ``accuracy`` = ``miml`` + ``mulan`` + ``frozen``; ``summary`` only redraws the plots and
  the summary from the JSON files already in ``--out``.

Outputs in ``--out`` (default ``benchmarks/results``):
``{miml,mulan,frozen,cost,runtime,defaults,meta}_<mode>.json``,
``{convergence,convergence_frozen,sensitivity,latency}_<mode>.png`` and ``summary_<mode>.md``,
where ``<mode>`` is ``quick`` or ``full``, so a quick run never overwrites full results. A full
run (into the default ``--out``) also rewrites the generated "Benchmark" block of
``docs/results.md``, the results page of the documentation.

Run from the repository root, one heavy run at a time on a shared machine::

    nice -n 10 .venv/bin/python benchmarks/run.py --quick         # ~10-15 min on 2 cores
    nice -n 10 .venv/bin/python benchmarks/run.py                 # the full run (~2.5 h)
    nice -n 10 .venv/bin/python benchmarks/run.py --only cost --seeds 0

Data: ``$RETDM_DATA_DIR`` (default ``../shared/data``) with ``miml_scene/``, ``mulan/scene/``
and ``keras_home/models/`` (offline MobileNetV2 ImageNet weights).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_common import (  # noqa: E402
    FULL,
    QUICK,
    RESULTS,
    configure_environment,
    data_dir,
    log,
    machine,
    read_json,
    result_path,
    write_json,
)

SECTIONS = ("miml", "mulan", "frozen", "cost", "runtime", "defaults")
QUICK_DEFAULTS_SETS = ("scene", "enron")
GROUPS = {"accuracy": ("miml", "mulan", "frozen"), "all": SECTIONS, "summary": ()}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the ~10-15 minute subset")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=(*SECTIONS, *GROUPS),
        default=["all"],
        help="sections to run (default all)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--data-dir", type=Path, default=None)
    return parser.parse_args(argv)


def check_data(data: Path, sections) -> None:
    needed = []
    if {"miml", "frozen", "cost", "runtime"} & set(sections):
        needed += [data / "miml_scene" / "labels.csv", data / "miml_scene" / "split.json"]
        needed += [data / "keras_home" / "models"]
    if "mulan" in sections:
        needed += [data / "mulan" / "scene" / f for f in ("scene-train.arff", "scene.xml")]
    if "defaults" in sections:
        needed += [data / "ucm" / "split.json", data / "mulan" / "tmc2007"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        sys.exit(
            "benchmark data not found:\n  " + "\n  ".join(missing) + "\nSet RETDM_DATA_DIR (see "
            "examples/scene_demo.py for the MIML layout; keras_home/models must hold "
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5)."
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    mode = settings.mode
    sections = []
    for name in args.only:
        for section in GROUPS.get(name, (name,)):
            if section not in sections:
                sections.append(section)
    data = args.data_dir or data_dir()
    check_data(data, sections)
    configure_environment(data)

    # Keras is imported only now, after KERAS_HOME points at the offline weights.
    import bench_plots
    from bench_report import update_readme, write_summary

    args.out.mkdir(parents=True, exist_ok=True)
    meta_path = result_path(args.out, "meta", mode)
    meta = read_json(meta_path) or {"sections": {}}
    meta.update(machine=machine(), settings=settings.to_dict(), seeds=args.seeds)
    started = time.time()
    log(f"{mode} run: sections {sections}, seeds {args.seeds}, data {data}, out {args.out}")
    for section in sections:
        t0 = time.time()
        if section == "miml":
            from bench_accuracy import run_miml

            result = run_miml(settings, args.seeds, data)
        elif section == "mulan":
            from bench_accuracy import run_mulan

            result = run_mulan(settings, args.seeds, data)
        elif section == "frozen":
            from bench_frozen import run_frozen

            result = run_frozen(settings, args.seeds, data)
        elif section == "runtime":
            from bench_runtime import run_runtime

            result = run_runtime(settings, data)
        elif section == "defaults":
            from bench_defaults import run_defaults
            from bench_report_defaults import report

            sets = QUICK_DEFAULTS_SETS if args.quick else None
            result = run_defaults(args.seeds, data, sets)
            result_path(args.out, "defaults", mode, ".md").write_text(report(result))
        else:
            from bench_cost import run_cost

            result = run_cost(settings, data)
        payload = {"mode": mode, "settings": settings.to_dict(), **result}
        write_json(result_path(args.out, section, mode), payload)
        meta["sections"][section] = time.time() - t0
        write_json(meta_path, meta)
        log(f"{section} done in {(time.time() - t0) / 60:.1f} min")

    miml = read_json(result_path(args.out, "miml", mode))
    mulan = read_json(result_path(args.out, "mulan", mode))
    cost = read_json(result_path(args.out, "cost", mode))
    frozen = read_json(result_path(args.out, "frozen", mode))
    bench_plots.convergence(
        {"MIML scene": miml, "MULAN scene": mulan},
        result_path(args.out, "convergence", mode, ".png"),
        mode,
    )
    if miml:
        bench_plots.sensitivity(
            miml.get("grid"), result_path(args.out, "sensitivity", mode, ".png"), mode
        )
    if frozen:
        bench_plots.convergence_frozen(
            frozen, result_path(args.out, "convergence_frozen", mode, ".png"), mode
        )
    if cost:
        bench_plots.latency(cost, result_path(args.out, "latency", mode, ".png"), mode)
    summary = write_summary(args.out, mode, settings.to_dict())
    if mode == "full" and args.out.resolve() == RESULTS.resolve():
        page = HERE.parent / "docs" / "results.md"
        if update_readme(page, args.out, mode):
            log(f"{page} results block rewritten from {args.out}/*_{mode}.json")
    log(f"total {(time.time() - started) / 60:.1f} min; summary: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
