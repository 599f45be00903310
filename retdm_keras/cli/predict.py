"""``retdm-keras predict``: the top-k labels of image files."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from retdm_keras.cli.common import (
    FEATURE_BACKBONE,
    MODEL_HELP,
    CLIError,
    DefaultsFormatter,
    add_backbone_runtime_argument,
    decisions,
    first_line,
    load_model,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np


def _read_image(path: str, image_size: tuple[int, int]) -> np.ndarray:
    """One image file, decoded and resized exactly as the evaluation pipeline does."""
    import tensorflow as tf

    from retdm_keras.data import eval_transform
    from retdm_keras.data.image_decode import decode_image_file

    if not os.path.isfile(path):
        raise CLIError(f"image file not found: {path}")
    try:
        image = decode_image_file(tf.constant(path))
    except (tf.errors.OpError, ValueError) as err:
        raise CLIError(f"cannot decode image {path}: {first_line(err)}") from err
    return eval_transform(image, image_size).numpy()


def cmd_predict(args: argparse.Namespace) -> int:
    """``retdm-keras predict``: top-k labels with probabilities for each image."""
    if args.top_k < 1:
        raise CLIError(f"--top-k must be >= 1, got {args.top_k}")
    import numpy as np

    model = load_model(args.model)
    if model.backbone == FEATURE_BACKBONE:
        raise CLIError(f"{args.model} takes feature vectors (backbone 'mlp'), not images")
    size = tuple(model.image_embedder.image_size)
    images = np.stack([_read_image(path, size) for path in args.images])
    probabilities = model.predict(images, batch_size=args.batch_size, verbose=0)
    predicted = decisions(model, probabilities, args.threshold)
    names = model.label_names or [str(j) for j in range(model.num_labels)]
    width = max(10, *(len(n) for n in names))
    k = min(args.top_k, model.num_labels)
    for path, row, chosen in zip(args.images, probabilities, predicted, strict=True):
        print(path)
        for j in np.argsort(-row, kind="stable")[:k]:
            mark = " *" if chosen[j] else ""
            print(f"  {names[j]:<{width}} {row[j]:.3f}{mark}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="print the top-k labels of images",
        description="Print each image's top-k labels; '*' marks the labels the model predicts.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG/PNG/GIF/BMP)")
    p.add_argument("--top-k", type=int, default=5, help="labels shown per image")
    p.add_argument(
        "--threshold",
        type=float,
        help="threshold for '*' (default: the model's rule — top_k or thresholds — else 0.5)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    add_backbone_runtime_argument(p)
    p.set_defaults(func=cmd_predict)
