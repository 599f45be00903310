"""``retdm-keras export``: ONNX / SavedModel / TFLite files of a saved model."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from retdm_keras.cli.common import (
    MODEL_HELP,
    PROG,
    CLIError,
    DefaultsFormatter,
    load_model,
    write_json,
)

# Checked against retdm_keras.export.FORMATS by the tests (see calibrate.CALIBRATION_METHODS).
EXPORT_SUFFIXES = {"onnx": ".onnx", "saved_model": "_saved_model", "tflite": ".tflite"}


def _print_latency(results: dict[str, Any]) -> None:
    print(f"median latency over {results['repeats']} runs (ms; speed-up over Keras):")
    for backend, times in results["latency_ms"].items():
        speedup = results["speedup_vs_keras"].get(backend, {})
        cells = [
            f"batch {b}: {ms:.3f}" + (f" ({speedup[b]:.1f}x)" if b in speedup else "")
            for b, ms in times.items()
        ]
        print(f"  {backend:<12} " + "; ".join(cells))


def cmd_export(args: argparse.Namespace) -> int:
    """``retdm-keras export``: ONNX / SavedModel / TFLite files of a saved model."""
    if args.opset is not None and args.format not in ("onnx", "all"):
        raise CLIError("--opset only applies to --format onnx or all")
    if args.benchmark and (min(args.batch_sizes) < 1 or args.repeats < 1):
        raise CLIError("--batch-sizes and --repeats must be >= 1")

    from retdm_keras.export import benchmark_latency, export_all, export_model

    model = load_model(args.model)
    if model.top_k:
        print(
            f"{PROG}: warning: the model predicts its top {model.top_k} labels; the exported "
            "metadata only describes thresholds",
            file=sys.stderr,
        )
    folder = os.path.dirname(os.path.abspath(args.model))
    stem = os.path.basename(args.model).removesuffix(".keras")
    options = dict(metadata=not args.no_metadata, opset=args.opset)
    if args.format == "all":
        out_folder = args.out or folder
        paths = export_all(model, out_folder, stem=stem, **options)
    else:
        default = os.path.join(folder, stem + EXPORT_SUFFIXES[args.format])
        path = export_model(model, args.out or default, args.format, **options)
        out_folder = str(path.parent)
        paths = {args.format: path}
    for fmt, path in paths.items():
        print(f"{fmt}: {path}")
    if args.benchmark:
        results = benchmark_latency(
            model, paths, batch_sizes=tuple(args.batch_sizes), repeats=args.repeats
        )
        target = os.path.join(out_folder, "latency.json")
        write_json(target, results)
        _print_latency(results)
        print(f"{PROG}: saved {target}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a saved model to ONNX, SavedModel or TFLite",
        description=(
            "Export the prediction path (raw pixels in [0, 255] -> probabilities) with the "
            "label names and thresholds as metadata."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--format", choices=(*EXPORT_SUFFIXES, "all"), default="onnx", help="export format"
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help=(
            "file or SavedModel folder to write; with --format all the folder for all three "
            "(default: next to MODEL, named after it)"
        ),
    )
    p.add_argument("--no-metadata", action="store_true", help="leave the metadata out")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: tf2onnx's)")
    p.add_argument(
        "--benchmark",
        action="store_true",
        help="time Keras and the exports; writes latency.json next to the output",
    )
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[1, 32],
        metavar="B",
        help="--benchmark: batch sizes to time",
    )
    p.add_argument("--repeats", type=int, default=20, help="--benchmark: timed runs per batch")
    p.set_defaults(func=cmd_export)
