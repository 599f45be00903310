"""Reliability of the image pipeline: bad image files fail early, by name, or are skipped.

Every bad file is made here, tiny: truncated/corrupt/empty JPEG and PNG files, a TIFF, a
1x1 image, a missing file, 16-bit PNGs (written by hand, PIL cannot write 16-bit RGB) and a
6000x4000 single-colour PNG (a few kB compressed).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from retdm_keras.data import (
    BadImageError,
    BadImageWarning,
    check_images,
    decode_image_file,
    from_folder,
    image_dataset,
    read_labels_csv,
)

# 16-bit values and their proper 8-bit values round(v * 255 / 65535); TensorFlow's own
# 8-bit PNG decode keeps the high byte, which gives 1 (not 2) for 511 and 128 for 0x80FF.
WIDE = np.array([511, 0x80FF, 0xFFFF, 0, 32640, 0x81FF], np.uint16)
NARROW = np.round(WIDE / 257.0)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(pixels: np.ndarray, corrupt_stream: bool = False) -> bytes:
    """A 16-bit PNG of ``(H, W, C)`` uint16 pixels, C = 1 (gray), 2, 3 (RGB) or 4 (RGBA).

    ``corrupt_stream`` damages the compressed data but keeps every CRC valid.
    """
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    stream = zlib.compress(rows)
    if corrupt_stream:
        stream = stream[:2] + bytes(len(stream) - 6) + stream[-4:]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", stream)
        + png_chunk(b"IEND", b"")
    )


def jpeg_bytes(seed: int = 0, size: tuple[int, int] = (24, 32)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


GOOD = {
    "good0.jpg": lambda: jpeg_bytes(0),
    "gray.png": lambda: png_bytes(Image.new("L", (9, 7), 77)),
    "rgba.png": lambda: png_bytes(Image.new("RGBA", (9, 7), (10, 200, 30, 40))),
    "palette.png": lambda: png_bytes(Image.new("P", (9, 7), 3)),
    "gray16.png": lambda: png16(np.tile(WIDE, (4, 1))[..., None]),
    "rgb16.png": lambda: png16(np.repeat(np.tile(WIDE, (4, 1))[..., None], 3, axis=2)),
    "rgba16.png": lambda: png16(np.stack([np.tile(WIDE, (4, 1))] * 3 + [np.full((4, 6), 9)], 2)),
    "good1.jpg": lambda: jpeg_bytes(1),
}
BAD = {  # name -> (content, words the reason must contain)
    "truncated.jpg": (lambda: jpeg_bytes(2)[:400], "truncated"),
    "headers_only.jpg": (
        lambda: jpeg_bytes(3)[: jpeg_bytes(3).find(b"\xff\xda")] + b"\xff\xd9",
        "no image data",
    ),
    "text.jpg": (lambda: b"this is not an image\n" * 5, "not an image"),
    "empty.jpg": (lambda: b"", "empty file"),
    "truncated.png": (lambda: png_bytes(Image.new("RGB", (30, 20), (1, 2, 3)))[:60], "truncated"),
    "tiny.png": (lambda: png_bytes(Image.new("RGB", (1, 1), (5, 5, 5))), "too small: 1x1"),
    "scan.tif": (lambda: _tiff(), "TIFF format"),
}


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buffer, "TIFF")
    return buffer.getvalue()


def write_folder(root: Path, names: list[str], missing: tuple[str, ...] = ()) -> Path:
    """Write the named files (``missing`` ones only go in the CSV) and a one-hot CSV."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name in missing:
            continue
        make = GOOD[name] if name in GOOD else BAD[name][0]
        (root / name).write_bytes(make())
    rows = [f"{name},{i % 2},{(i // 2) % 2}" for i, name in enumerate(names)]
    csv = root / "labels.csv"
    csv.write_text("file,a,b\n" + "\n".join(rows) + "\n")
    return csv


def collect(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, index, labels = [], [], []
    for x, y in ds:
        images.append(x["images"].numpy())
        index.append(x["index"].numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(index), np.concatenate(labels)


# ------------------------------------------------------------------ conversions


@pytest.mark.parametrize("name", ["gray16.png", "rgb16.png", "rgba16.png"])
def test_16bit_png_is_scaled_to_8_bits_by_rounding(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(GOOD[name]())
    image = decode_image_file(tf.constant(str(tmp_path / name))).numpy()
    assert image.dtype == np.uint8 and image.shape == (4, len(WIDE), 3)
    np.testing.assert_array_equal(image, np.broadcast_to(NARROW[None, :, None], image.shape))


def test_converted_modes_pass_checks_and_give_rgb(tmp_path: Path) -> None:
    names = ["gray.png", "rgba.png", "palette.png", "gray16.png", "rgb16.png", "rgba16.png"]
    files = read_labels_csv(write_folder(tmp_path, names))
    assert check_images(tmp_path, files) is files
    assert check_images(tmp_path, files, full=True) is files
    ds = image_dataset(tmp_path, files, image_size=(4, 6), batch_size=8)
    images, index, _ = collect(ds)
    np.testing.assert_array_equal(index, np.arange(len(names)))
    np.testing.assert_array_equal(images[0], np.full((4, 6, 3), 77.0))
    np.testing.assert_array_equal(images[1][0, 0], [10, 200, 30])  # alpha dropped
    for row in images[3:]:  # 16-bit, resized to their own size: exact
        np.testing.assert_array_equal(row[0, :, 0], NARROW)


# ------------------------------------------------------------------ bad files: error


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_bad_image_is_an_error_naming_file_and_line(tmp_path: Path, bad: str) -> None:
    csv = write_folder(tmp_path, ["good0.jpg", bad, "good1.jpg"])
    words = BAD[bad][1]
    pattern = rf"1 of 3 image file\(s\) listed in .*labels.csv .*'{bad}' \(line 3\): .*{words}"
    with pytest.raises(BadImageError, match=pattern) as info:
        from_folder(tmp_path, csv, image_size=8)
    assert [(b.filename, b.line, b.row) for b in info.value.bad] == [(bad, 3, 1)]
    assert "on_bad_image='skip'" in str(info.value)
    files = read_labels_csv(csv)
    with pytest.raises(BadImageError, match=bad):
        image_dataset(tmp_path, files, image_size=8, validate_images="full")


@pytest.mark.parametrize("bad", ["truncated.jpg", "text.jpg", "truncated.png"])
def test_without_the_check_tensorflow_fails_mid_epoch(tmp_path: Path, bad: str) -> None:
    # what the check prevents: the same files fail only when the batch is decoded
    files = read_labels_csv(write_folder(tmp_path, ["good0.jpg", bad]))
    ds = image_dataset(tmp_path, files, image_size=8, validate_images=False)
    with pytest.raises(tf.errors.InvalidArgumentError):
        collect(ds)


def test_missing_file_error_from_folder_has_csv_lines(tmp_path: Path) -> None:
    csv = write_folder(tmp_path, ["good0.jpg", "good1.jpg", "gone.jpg"], missing=("gone.jpg",))
    with pytest.raises(FileNotFoundError, match=r"1 of 3 image file\(s\) listed in .*labels.csv"):
        from_folder(tmp_path, csv, image_size=8)
    with pytest.raises(FileNotFoundError, match=r"'gone.jpg' \(line 4\)"):
        from_folder(tmp_path, csv, image_size=8, validate_images=False)


def test_damage_inside_compressed_data_needs_full(tmp_path: Path) -> None:
    # valid chunk CRCs around a broken zlib stream: the cheap check cannot see it
    (tmp_path / "stream.png").write_bytes(png16(np.ones((5, 6, 3), np.uint16), True))
    (tmp_path / "good0.jpg").write_bytes(jpeg_bytes(0))
    (tmp_path / "l.csv").write_text("file,a\ngood0.jpg,1\nstream.png,0\n")
    files = read_labels_csv(tmp_path / "l.csv")
    assert check_images(tmp_path, files) is files
    with pytest.raises(BadImageError, match=r"'stream.png' \(line 3\): TensorFlow cannot decode"):
        check_images(tmp_path, files, full=True)


# ------------------------------------------------------------------ bad files: skip


def test_skip_leaves_bad_files_out_and_keeps_the_index_contract(tmp_path: Path) -> None:
    names = ["good0.jpg", *sorted(BAD), "gray16.png", "gone.jpg", "good1.jpg"]
    csv = write_folder(tmp_path, names, missing=("gone.jpg",))
    with pytest.warns(BadImageWarning) as record:
        ds, files = from_folder(tmp_path, csv, image_size=6, batch_size=2, on_bad_image="skip")
    (message,) = [str(w.message) for w in record if issubclass(w.category, BadImageWarning)]
    assert message.startswith(f"skipped {len(BAD) + 1} of {len(names)} image file(s)")
    assert "'empty.jpg' (line 3): empty file" in message  # the first few, with lines
    assert f"and {len(BAD) + 1 - 5} more" in message
    assert files.filenames == ["good0.jpg", "gray16.png", "good1.jpg"]
    assert files.csv_lines == [2, len(names) - 1, len(names) + 1]
    everything = read_labels_csv(csv)
    np.testing.assert_array_equal(files.labels, everything.subset(files.filenames).labels)
    for training in (False, True):
        with pytest.warns(BadImageWarning):
            ds, kept = from_folder(
                tmp_path, csv, image_size=6, batch_size=2, on_bad_image="skip", training=training
            )
        _, index, labels = collect(ds)
        assert sorted(index.tolist()) == [0, 1, 2]  # 0..N-1 over the kept rows
        np.testing.assert_array_equal(labels, kept.labels[index])


def test_skip_with_image_dataset_returns_the_kept_rows(tmp_path: Path) -> None:
    files = read_labels_csv(write_folder(tmp_path, ["good0.jpg", "text.jpg", "good1.jpg"]))
    with pytest.warns(BadImageWarning, match=r"skipped 1 of 3.*'text.jpg' \(line 3\)"):
        ds, kept = image_dataset(
            tmp_path, files, image_size=6, on_bad_image="skip", return_files=True
        )
    assert kept.filenames == ["good0.jpg", "good1.jpg"]
    np.testing.assert_array_equal(collect(ds)[1], [0, 1])
    with pytest.warns(BadImageWarning, match="skipped 1 of 3 missing"):  # no image check
        (tmp_path / "text.jpg").unlink()
        ds, kept = image_dataset(
            tmp_path, files, image_size=6, on_bad_image="skip", validate_images=False,
            return_files=True,
        )  # fmt: skip
    assert kept.filenames == ["good0.jpg", "good1.jpg"]


def test_skip_with_nothing_left_and_bad_arguments_are_errors(tmp_path: Path) -> None:
    files = read_labels_csv(write_folder(tmp_path, ["text.jpg", "empty.jpg"]))
    with pytest.raises(BadImageError, match="all 2 of 2 image file"):
        image_dataset(tmp_path, files, on_bad_image="skip")
    with pytest.raises(ValueError, match="on_bad_image"):
        image_dataset(tmp_path, files, on_bad_image="ignore")
    with pytest.raises(ValueError, match="validate_images"):
        image_dataset(tmp_path, files, validate_images="fast")


def test_good_files_raise_no_warning(tmp_path: Path) -> None:
    files = read_labels_csv(write_folder(tmp_path, ["good0.jpg", "gray.png"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadImageWarning)
        ds, kept = image_dataset(tmp_path, files, image_size=4, on_bad_image="skip",
                                 return_files=True)  # fmt: skip
    assert kept is files


# ------------------------------------------------------------------ size limits


@pytest.fixture(scope="module")
def huge_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("huge")
    Image.new("RGB", (6000, 4000), (200, 100, 50)).save(root / "huge.png")  # ~70 kB
    (root / "good0.jpg").write_bytes(jpeg_bytes(0))
    (root / "l.csv").write_text("file,a\ngood0.jpg,1\nhuge.png,0\n")
    return root, root / "l.csv"


def test_a_huge_image_is_decoded_and_resized(huge_folder) -> None:
    root, csv = huge_folder
    assert (root / "huge.png").stat().st_size < 1_000_000
    ds, files = from_folder(root, csv, image_size=8, batch_size=2)
    images, index, _ = collect(ds)
    np.testing.assert_array_equal(index, [0, 1])
    np.testing.assert_allclose(images[1], np.broadcast_to([200.0, 100.0, 50.0], (8, 8, 3)))


def test_max_image_pixels_rejects_or_skips_a_huge_image(huge_folder) -> None:
    root, csv = huge_folder
    with pytest.raises(BadImageError, match=r"'huge.png' \(line 3\): too large: 6000x4000"):
        from_folder(root, csv, image_size=8, max_image_pixels=10_000_000)
    with pytest.warns(BadImageWarning, match="too large"):
        _, files = from_folder(
            root, csv, image_size=8, max_image_pixels=10_000_000, on_bad_image="skip"
        )
    assert files.filenames == ["good0.jpg"]
