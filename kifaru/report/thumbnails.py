"""A file's best frame as a small JPEG with the detector's boxes drawn on it: what the report
shows on each card. A thumbnail is named by what it shows (file, frame, boxes, size), so a
report made again reuses the ones it made before and only reads the files that changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from kifaru.outputs.summaries import Box, FileSummary
from kifaru.runs.records import MEDIA_VIDEO

THUMBNAIL_WIDTH = 320
JPEG_QUALITY = 80
# Box colours by detection category, chosen to stand out on foliage, soil and night (IR) frames.
BOX_COLOURS = {"animal": (255, 221, 0), "person": (0, 200, 255), "vehicle": (255, 80, 200)}
BOX_WIDTH = 3  # pixels, on the thumbnail, drawn inwards from the box's edge


def thumbnail_name(summary: FileSummary, path: Path) -> str:
    """A name that changes whenever what the thumbnail shows would (the file, its frame, its boxes)."""
    try:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        stamp = None
    key = json.dumps([str(path), stamp, summary.best_frame_number, [(b.box, b.category) for b in summary.boxes], THUMBNAIL_WIDTH])
    return hashlib.sha1(key.encode()).hexdigest()[:16] + ".jpg"


def best_frame_pixels(summary: FileSummary, path: Path) -> np.ndarray:
    """The frame a card shows (RGB uint8): a clip's best frame (its first without detections), or the photo.
    Raises a KifaruError (or the decoder's own) when the file cannot be read."""
    if summary.media != MEDIA_VIDEO:
        from kifaru.images.photo import read_photo

        return read_photo(path).pixels
    from kifaru.video.decode import PyAVVideoSource

    source = PyAVVideoSource(path)
    try:
        wanted = summary.best_frame_number or 0
        for frame in source.decode([wanted], threaded=False):
            return frame.to_rgb()
        raise ValueError(f"frame {wanted} could not be decoded" + (f" ({'; '.join(source.last_failures)})" if source.last_failures else ""))
    finally:
        source.close()


def draw_boxes(pixels: np.ndarray, boxes: Sequence[Box], width: int = THUMBNAIL_WIDTH) -> Image.Image:
    """The picture scaled to ``width`` (never up) with each box's outline drawn."""
    image = Image.fromarray(pixels)
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for box in boxes:
        x1, y1, x2, y2 = box.box
        outline = BOX_COLOURS.get(box.category, BOX_COLOURS["animal"])
        draw.rectangle(
            [round(x1 * (image.width - 1)), round(y1 * (image.height - 1)), round(x2 * (image.width - 1)), round(y2 * (image.height - 1))],
            outline=outline,
            width=BOX_WIDTH,
        )
    return image


def make_thumbnail(summary: FileSummary, path: Path, folder: Path) -> tuple[Optional[str], Optional[str]]:
    """(file name in ``folder``, None), or (None, why there is no picture). Never raises for a bad file."""
    name = thumbnail_name(summary, path)
    target = folder / name
    if target.exists():
        return name, None
    try:
        pixels = best_frame_pixels(summary, path)
    except Exception as error:  # one unreadable file must not stop the report: its card says why
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        return None, f"no picture: {reason}"
    image = draw_boxes(pixels, summary.boxes)
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    # Full-resolution colour (4:4:4): subsampled chroma would smear a thin yellow outline into the ground.
    image.save(partial, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    partial.replace(target)
    return name, None
