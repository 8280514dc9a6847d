"""read_photo on the photos an SD card holds: each is the picture the camera took, upright and
8-bit RGB, or a typed error naming the problem; nothing is made up."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kifaru.exceptions import EmptyMediaError, MediaNotFoundError, NotAPhotoError
from kifaru.images.photo import read_photo
from tests.images.photos import cat_photo, drawn_photo


def write_png16_rgb(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one): ``pixels`` uint16, height x width x 3."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_a_jpeg_is_read_as_its_pixels(tmp_path):
    path = tmp_path / "cat.png"
    cat_photo().save(path)
    photo = read_photo(path)
    assert np.array_equal(photo.pixels, np.asarray(cat_photo()))
    assert photo.notes == []


def test_missing_and_empty_files_are_errors(tmp_path):
    with pytest.raises(MediaNotFoundError):
        read_photo(tmp_path / "gone.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(EmptyMediaError, match="0 bytes"):
        read_photo(tmp_path / "empty.jpg")


def test_a_truncated_jpeg_is_an_error_not_a_grey_half(tmp_path):
    whole = tmp_path / "whole.jpg"
    cat_photo().save(whole, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(NotAPhotoError, match="is the file complete"):
        read_photo(cut)


def test_a_text_file_named_jpg_is_an_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo\n" * 20)
    with pytest.raises(NotAPhotoError, match="not an image file"):
        read_photo(path)


def test_a_png_named_jpg_is_read_with_a_note(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    drawn_photo(1).save(path, format="PNG")
    photo = read_photo(path)
    assert np.array_equal(photo.pixels, np.asarray(drawn_photo(1)))
    assert photo.notes == ["a PNG file named .jpg: read as PNG"]


def test_a_cmyk_jpeg_comes_back_as_its_rgb(tmp_path):
    original = drawn_photo(2)
    path = tmp_path / "cmyk.jpg"
    original.convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    photo = read_photo(path)
    assert photo.pixels.shape == (original.height, original.width, 3)
    # JPEG at quality 95 moves a smooth picture's pixels by a few levels; an inverted CMYK
    # (Adobe's convention misread) would move them by ~100.
    assert np.abs(photo.pixels.astype(int) - np.asarray(original).astype(int)).mean() < 6


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    levels = (np.arange(24).reshape(4, 6) * 2800).astype(np.uint16)  # 0 .. 64400
    gray = tmp_path / "gray16.png"
    Image.fromarray(levels).save(gray)
    assert Image.open(gray).mode == "I;16"
    photo = read_photo(gray)
    assert np.array_equal(photo.pixels[..., 0], np.rint(levels * (255 / 65535)).astype(np.uint8))
    assert np.array_equal(photo.pixels[..., 0], photo.pixels[..., 2])

    rgb = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 900).astype(np.uint16)
    colour = tmp_path / "rgb16.png"
    write_png16_rgb(colour, rgb)
    assert np.array_equal(read_photo(colour).pixels, (rgb >> 8).astype(np.uint8))  # each channel's top 8 bits


def test_an_exif_rotated_photo_is_turned_upright(tmp_path):
    original = drawn_photo(3, size=(320, 240))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: shown rotated 90 degrees clockwise
    path = tmp_path / "turned.png"
    original.save(path, exif=exif)
    photo = read_photo(path)
    assert photo.pixels.shape == (320, 240, 3)
    assert np.array_equal(photo.pixels, np.asarray(original.transpose(Image.Transpose.ROTATE_270)))
    assert photo.notes == ["turned upright (EXIF orientation 6)"]


def test_a_grayscale_photo_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "night.png"
    gray = drawn_photo(4).convert("L")
    gray.save(path)
    photo = read_photo(path)
    assert photo.pixels.shape == (gray.height, gray.width, 3)
    for channel in range(3):
        assert np.array_equal(photo.pixels[..., channel], np.asarray(gray))


def test_transparency_is_dropped(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = drawn_photo(5).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(path)
    assert np.array_equal(read_photo(path).pixels, np.asarray(drawn_photo(5)))


def test_photos_past_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    import kifaru.images.photo as photo_module

    path = tmp_path / "big.png"
    drawn_photo(6, size=(200, 100)).save(path)
    monkeypatch.setattr(photo_module, "MAX_PIXELS", 200 * 100 - 1)
    with pytest.raises(NotAPhotoError, match="200 x 100 pixels"):
        read_photo(path)


def test_a_photo_is_copied_in_bands_and_cropped_as_pil_crops_it(tmp_path):
    """read_photo copies the decoded photo a band of rows at a time and crops only the box (the
    memory of an 8000 x 6000 photo: benchmarks/image_memory.py); the pixels are PIL's own."""
    from PIL import Image

    from kifaru.images.photo import _as_array, read_photo

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (1100, 700, 3), dtype=np.uint8))
    assert np.array_equal(_as_array(image, rows=512), np.asarray(image))  # 512 + 512 + 76 rows
    image.save(tmp_path / "p.png")
    photo = read_photo(tmp_path / "p.png")
    for box in [(10, 20, 300, 400), (-30, -10, 50, 60), (650, 1000, 760, 1150), (0, 0, 700, 1100)]:
        assert np.array_equal(np.asarray(photo.crop(box)), np.asarray(image.crop(box))), box
