"""Check image files once, before a pipeline is built, so bad files never fail mid-epoch.

A corrupt, truncated or unsupported file that reaches ``tf.io.decode_image`` inside a
``tf.data`` map stops training with an opaque ``InvalidArgumentError`` somewhere in an epoch.
:func:`check_images` looks at every file first, in a thread pool, with PIL:

* the file exists, is not empty, and PIL recognises it;
* its format is one TensorFlow decodes (JPEG, PNG, GIF, BMP, WebP; not TIFF, ...);
* its size is sane: the shorter side is at least ``min_image_size`` (default 2, so a 1×1
  placeholder is rejected) and it has at most ``max_image_pixels`` pixels (default PIL's
  decompression-bomb limit, about 89 million; a 6000×4000 photo is fine; PIL itself refuses
  more than twice its limit whatever this is set to);
* the data is complete, cheaply: a PNG's chunks and checksums are walked
  (``Image.verify``, no decompression); a JPEG must have a scan and end with its
  end-of-image marker, and only when it does not (trailing data, a truncated file) is it
  decoded, at 1/8 scale; GIF/BMP/WebP (rare, small) are decoded. Intact JPEGs and PNGs are
  therefore never decompressed; the checks cannot see damage inside compressed data whose
  checksums and markers are intact (e.g. a corrupt PNG stream with recomputed CRCs).

``full=True`` instead decodes every image with the pipeline's own decoder
(:func:`~retdm_keras.data.image_decode.decode_image_file`): slower, but whatever passes will
decode in training. Nothing is cached.

Grayscale, palette, RGBA and 16-bit images are *not* bad: the pipeline converts them to
8-bit RGB. A bad file is an error naming it (``on_bad_image="error"``, the default), or it
is left out (``"skip"``): the kept rows come back as a new :class:`LabeledFiles` whose row
positions are the pipeline's ``index`` (0..N-1 over the kept rows), and one
:class:`BadImageWarning` reports the count and the first few files.

Example::

    files = check_images("images", read_labels_csv("labels.csv"), on_bad_image="skip")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from retdm_keras.data.labels import LabeledFiles, check_files_exist

__all__ = [
    "BAD_IMAGE_ACTIONS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MIN_IMAGE_SIZE",
    "BadImage",
    "BadImageError",
    "BadImageWarning",
    "check_images",
    "find_bad_images",
]

BAD_IMAGE_ACTIONS = ("error", "skip")
DEFAULT_MIN_IMAGE_SIZE = 2
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS
# PIL format name -> what TensorFlow's decode_image calls it (MPO: a multi-picture JPEG).
_TF_FORMATS = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "BMP": "BMP",
    "WEBP": "WebP",
}
_JPEG_END = b"\xff\xd9"


class BadImage(NamedTuple):
    """One unusable image: its row in the files, filename, CSV line (or None), and why."""

    row: int
    filename: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.filename!r}{where}: {self.reason}"


class BadImageError(ValueError):
    """Image files that cannot be used; ``bad`` lists them all."""

    def __init__(self, message: str, bad: Sequence[BadImage]):
        super().__init__(message)
        self.bad = list(bad)


class BadImageWarning(UserWarning):
    """Image files were left out (``on_bad_image="skip"``)."""


def _jpeg_is_complete(path: str, size: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 2))
        return fh.read(2) == _JPEG_END


def _inspect(path: str, min_size: int, max_pixels: int | None, full: bool) -> str | None:
    """Why ``path`` cannot be used, or None."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        return "file not found"
    size = os.path.getsize(path)
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            kind, (width, height) = image.format, image.size
            if kind not in _TF_FORMATS:
                supported = ", ".join(sorted(set(_TF_FORMATS.values())))
                return f"{kind or 'unknown'} format; TensorFlow decodes only {supported}"
            if min(width, height) < min_size:
                return f"too small: {width}x{height} px (min_image_size={min_size})"
            if max_pixels is not None and width * height > max_pixels:
                return (
                    f"too large: {width}x{height} = {width * height} pixels "
                    f"(max_image_pixels={max_pixels})"
                )
            if full:
                pass  # decoded below with TensorFlow
            elif kind == "PNG":
                image.verify()  # every chunk and CRC, no decompression
            elif _TF_FORMATS[kind] == "JPEG":
                if not image.tile:
                    return "corrupt JPEG (no image data after the header)"
                if not _jpeg_is_complete(path, size):
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()  # raises on truncated data
            else:
                image.load()
    except Image.DecompressionBombError as err:
        return f"too large: {err}"
    except UnidentifiedImageError:
        return "not an image PIL recognises (unreadable or corrupt)"
    except Exception as err:  # PIL raises OSError, SyntaxError, struct.error, ...
        return f"corrupt or truncated ({type(err).__name__}: {err})"
    if full:
        import tensorflow as tf

        from retdm_keras.data.image_decode import decode_image_file

        try:
            decode_image_file(tf.constant(path))
        except (tf.errors.OpError, ValueError) as err:
            message = getattr(err, "message", str(err)).strip().splitlines()[-1]
            return f"TensorFlow cannot decode it ({message})"
    return None


def find_bad_images(
    image_dir: str | os.PathLike[str],
    files: LabeledFiles,
    *,
    full: bool = False,
    min_image_size: int = DEFAULT_MIN_IMAGE_SIZE,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    num_workers: int | None = None,
) -> list[BadImage]:
    """Every unusable image of ``files`` (missing ones included), in row order."""
    root = os.fspath(image_dir)
    paths = [os.path.join(root, name) for name in files.filenames]
    workers = num_workers or min(16, 2 * (os.cpu_count() or 1))

    def inspect(path: str) -> str | None:
        return _inspect(path, min_image_size, max_image_pixels, full)

    if workers <= 1 or len(paths) < 2:
        reasons = [inspect(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(pool.map(inspect, paths))
    lines = files.csv_lines
    return [
        BadImage(i, files.filenames[i], None if lines is None else lines[i], reason)
        for i, reason in enumerate(reasons)
        if reason is not None
    ]


def _summary(bad: Sequence[BadImage], total: int, max_report: int) -> tuple[str, str]:
    shown = "; ".join(str(b) for b in bad[:max_report])
    more = f"; ... and {len(bad) - max_report} more" if len(bad) > max_report else ""
    return f"{len(bad)} of {total} image file(s)", f"first: {shown}{more}"


def check_images(
    image_dir: str | os.PathLike[str],
    files: LabeledFiles,
    *,
    on_bad_image: str = "error",
    full: bool = False,
    min_image_size: int = DEFAULT_MIN_IMAGE_SIZE,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    num_workers: int | None = None,
    max_report: int = 5,
) -> LabeledFiles:
    """Check every image of ``files``; raise on bad ones, or leave them out.

    Args:
        image_dir: folder the filenames are relative to.
        files: the samples.
        on_bad_image: ``"error"`` (default) raises; ``"skip"`` drops bad rows and warns.
        full: decode every image with TensorFlow instead of the cheap PIL checks.
        min_image_size: smallest allowed shorter side, in pixels.
        max_image_pixels: largest allowed width × height; ``None``: no limit.
        num_workers: threads (default ``min(16, 2 × CPUs)``).
        max_report: how many bad files the message names.

    Returns:
        ``files`` itself when every image is usable, else (``"skip"``) the kept rows, in
        order, with their CSV lines: row ``i`` of the result is sample ``index`` ``i``.

    Raises:
        FileNotFoundError: ``"error"`` and missing files (see :func:`check_files_exist`).
        BadImageError: ``"error"`` and unusable files, or ``"skip"`` and none left; the
            message gives the count and the first files with their CSV lines and reasons.
        ValueError: an unknown ``on_bad_image``.
    """
    if on_bad_image not in BAD_IMAGE_ACTIONS:
        raise ValueError(f"on_bad_image must be one of {BAD_IMAGE_ACTIONS}, got {on_bad_image!r}")
    root = os.fspath(image_dir)
    if on_bad_image == "error":
        check_files_exist(root, files.filenames, csv_lines=files.csv_lines, source=files.source)
    elif not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    bad = find_bad_images(
        root,
        files,
        full=full,
        min_image_size=min_image_size,
        max_image_pixels=max_image_pixels,
        num_workers=num_workers,
    )
    if not bad:
        return files
    origin = f" listed in {files.source}" if files.source else ""
    count, first = _summary(bad, len(files), max_report)
    if on_bad_image == "error":
        raise BadImageError(
            f"{count}{origin} under {root!r} cannot be used; {first}. "
            "Fix or remove them, or pass on_bad_image='skip' to leave them out",
            bad,
        )
    if len(bad) == len(files):
        raise BadImageError(f"all {count}{origin} under {root!r} are unusable; {first}", bad)
    warnings.warn(
        f"skipped {count}{origin} under {root!r}; {first}. The dataset's index refers to "
        f"the {len(files) - len(bad)} kept rows",
        BadImageWarning,
        stacklevel=3,
    )
    dropped = {b.row for b in bad}
    return files.subset([i for i in range(len(files)) if i not in dropped])
