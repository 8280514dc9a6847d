"""Reading a camera-trap photo as an upright 8-bit RGB picture, or saying exactly why it cannot be.

Whatever the file is, the result is either the picture the camera took or a typed error naming the
problem, never a picture made up to fill a gap: an empty file, a truncated JPEG (PIL would grey out
the missing part only if told to; kifaru does not tell it) or a file that is not an image is an
error. What can be read faithfully is: the EXIF orientation applied (a camera held on its side),
CMYK and grayscale converted to RGB, 16-bit PNGs scaled to 8 bits (PIL's own conversion clips them
to white), transparency dropped, a PNG or WebP named ``.jpg`` read for what it is (with a note).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kifaru.exceptions import EmptyMediaError, MediaNotFoundError, NotAPhotoError

# Photos above this many pixels are refused rather than decoded: 200 MP of RGB is 600 MB per
# worker, and no camera trap takes them (an 8000 x 6000 photo is 48 MP).
MAX_PIXELS = 200_000_000
_FORMAT_SUFFIXES = {"JPEG": {".jpg", ".jpeg"}, "PNG": {".png"}, "WEBP": {".webp"}, "TIFF": {".tif", ".tiff"}, "BMP": {".bmp"}}


@dataclass
class Photo:
    """An upright RGB picture (``pixels``: uint8, height x width x 3) and what was noticed reading it."""

    pixels: np.ndarray
    notes: list[str] = field(default_factory=list)
    taken: Optional[datetime] = None  # EXIF DateTimeOriginal (bursts: kifaru.images.sequences)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def image(self) -> Image.Image:
        return Image.fromarray(self.pixels)

    def crop(self, box: tuple[int, int, int, int]) -> Image.Image:
        """The pixel box (x1, y1, x2, y2) as an image, as ``image().crop(box)`` gives it (parts
        outside the photo black), copying only the box, not the whole photo."""
        x1, y1, x2, y2 = box
        inside = self.pixels[max(y1, 0) : max(min(y2, self.height), 0), max(x1, 0) : max(min(x2, self.width), 0)]
        if (x1, y1, x2, y2) == (max(x1, 0), max(y1, 0), min(x2, self.width), min(y2, self.height)):
            return Image.fromarray(np.ascontiguousarray(inside))
        canvas = Image.new("RGB", (x2 - x1, y2 - y1))
        if inside.size:
            canvas.paste(Image.fromarray(np.ascontiguousarray(inside)), (max(x1, 0) - x1, max(y1, 0) - y1))
        return canvas


def read_photo(path: str | Path) -> Photo:
    """The photo at ``path`` (see the module); MediaNotFoundError, EmptyMediaError or
    NotAPhotoError (a file that is not a readable image) otherwise, each with the reason."""
    path = Path(path)
    if not path.is_file():
        raise MediaNotFoundError(path, "file not found")
    if path.stat().st_size == 0:
        raise EmptyMediaError(path, "file is empty (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise NotAPhotoError(path, f"{image.width} x {image.height} pixels: larger than the {MAX_PIXELS // 1_000_000} MP kifaru reads")
                suffixes = _FORMAT_SUFFIXES.get(image.format or "")
                if suffixes is not None and path.suffix.lower() not in suffixes:
                    notes.append(f"a {image.format} file named {path.suffix}: read as {image.format}")
                image.load()  # a truncated file fails here (PIL's LOAD_TRUNCATED_IMAGES stays off)
                from kifaru.images.sequences import taken_at

                exif = image.getexif()
                taken = taken_at(exif)
                orientation = exif.get(0x0112, 1)
                # exif_transpose copies the photo even when it is upright: only where it is not.
                upright = ImageOps.exif_transpose(image) if orientation not in (None, 1) else image
                if upright is not image:
                    notes.append(f"turned upright (EXIF orientation {orientation})")
                pixels = _rgb(upright)
                del upright
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise NotAPhotoError(path, f"too large to read ({error})") from None
    except UnidentifiedImageError:
        raise NotAPhotoError(path, "not an image file kifaru can read (JPEG, PNG, WebP, TIFF, BMP)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise NotAPhotoError(path, f"the image cannot be decoded ({error}); is the file complete?") from None
    return Photo(pixels, notes, taken)


def _rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit integer) gray: scale to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode == "F":
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return _as_array(image if image.mode == "RGB" else image.convert("RGB"))


def _as_array(image: Image.Image, rows: int = 512) -> np.ndarray:
    """The RGB ``image`` as a (height, width, 3) uint8 array, copied a band of rows at a time:
    ``np.asarray(image)`` goes through ``tobytes()``, which holds the photo twice more at once
    (for an 8000 x 6000 photo, 275 MB beside the decoded 137 MB)."""
    out = np.empty((image.height, image.width, 3), dtype=np.uint8)
    for top in range(0, image.height, rows):
        out[top : top + rows] = np.asarray(image.crop((0, top, image.width, min(top + rows, image.height))))
    return out
