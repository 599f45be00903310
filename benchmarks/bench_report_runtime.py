"""The ``runtime`` section of the summary: ONNX Runtime against Keras for the backbone."""

from __future__ import annotations


def _rate(entry: dict) -> str:
    return f"{entry['images_per_s']:,.0f}"


def section(result: dict) -> list[str]:
    """Markdown lines for ``runtime_<mode>.json``."""
    ex = result["extraction"]
    lines = [
        "## Backbone runtime: ONNX Runtime vs Keras",
        "",
        f"MobileNetV2 (ImageNet) at {ex['image_size']} px, batch {ex['batch_size']}, the "
        f"{ex['images']:,} MIML training images through the same `tf.data` pipeline (decoding "
        "and resizing included), one process, one method after the other, each warmed up on "
        "one batch. Images/s:",
        "",
        "| path | plain view | augmented pass | vs `keras.Model.predict` |",
        "|---|---|---|---|",
        f"| `keras.Model.predict` of the feature model | {_rate(ex['keras_predict'])} | — | 1.0× |",
        f'| library extraction, `runtime="keras"` (before) | '
        f"{_rate(ex['library_keras_plain'])} | {_rate(ex['library_keras_augmented'])} | "
        f"{ex['library_keras_plain']['vs_keras_predict']:.1f}× |",
        f"| library extraction, default (ONNX Runtime) | {_rate(ex['library_onnx_plain'])} | "
        f"{_rate(ex['library_onnx_augmented'])} | "
        f"**{ex['library_onnx_plain']['vs_keras_predict']:.1f}×** |",
        "",
        f"Parity: ONNX Runtime's features differ from `keras.Model.predict`'s by at most "
        f"{ex['parity_onnx_vs_keras_predict']:.1e} of their scale (augmented pass against the "
        f"library's Keras path: {ex['parity_onnx_vs_library_keras_augmented']:.1e}; the "
        "library refuses a conversion above 1e-4). Where the time goes: the pipeline alone "
        f"runs at {_rate(ex['pipeline_only_plain'])} (plain) / "
        f"{_rate(ex['pipeline_only_augmented'])} (augmented) images/s, ONNX Runtime alone on "
        f"images in memory at {_rate(ex['onnx_only_in_memory'])}; the one-off conversion "
        f"takes {ex['conversion_seconds']:.1f} s.",
        "",
    ]
    lat = result.get("latency")
    if lat:
        lines += [
            f"`predict` latency of the `{lat['model'].split()[-1]}` zoo model on raw "
            f"{lat['image_size']}-px images in memory (median of {lat['repeats']}): batch 1 "
            f"{lat['keras_batch_1_ms']:.0f} ms with Keras → {lat['auto_batch_1_ms']:.0f} ms "
            f"by default ({lat['speedup_batch_1']:.1f}×); batch 32 "
            f"{lat['keras_batch_32_ms']:.0f} → {lat['auto_batch_32_ms']:.0f} ms "
            f"({lat['speedup_batch_32']:.1f}×); probabilities within "
            f"{lat['parity_probabilities']:.1e}.",
            "",
        ]
    cold = result.get("cold")
    if cold:
        lines += [
            "From empty caches (feature cache and `KERAS_HOME`), wall time of the whole "
            "command, `RETDM_BACKBONE_RUNTIME=keras` (before) vs the default (after):",
            "",
            "| command | before | after | saved |",
            "|---|---|---|---|",
        ]
        for name, label in (
            ("demo", "`make demo` (examples/scene_demo.py)"),
            ("recipe_scene", "`retdm-keras train --recipe scene`"),
        ):
            if name in cold:
                entry = cold[name]
                lines.append(
                    f"| {label} | {entry['before']['seconds']:.0f} s | "
                    f"{entry['after']['seconds']:.0f} s | {entry['saved_seconds']:.0f} s "
                    f"({entry['speedup']:.2f}×) |"
                )
        lines += [""]
    return lines
