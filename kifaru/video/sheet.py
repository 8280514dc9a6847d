"""Contact sheets: the selected frames in a grid, each labelled with where it came from.

A sheet holds at most ``MAX_TILES`` tiles, evenly chosen over the selected frames, each at most
``MAX_TILE_WIDTH`` pixels wide: a clip's every frame at full size would make a sheet (and a
process) of many gigabytes. The loader shrinks each chosen frame to its tile as soon as it is
decoded (:meth:`kifaru.video.FrameLoader.load_thumbnails`), so a sheet never needs the clip's
frames in memory at once.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 16
MAX_TILES = 64
MAX_TILE_WIDTH = 320


def evenly_chosen(count: int, limit: int) -> list[int]:
    """Positions of at most ``limit`` of ``count`` items, evenly spread and including the first
    and the last; all of them when ``count <= limit``."""
    if count <= limit:
        return list(range(count))
    if limit <= 1:
        return [0][:limit]
    # Spacing (count - 1) / (limit - 1) > 1, so the rounded positions are distinct.
    return [round(k * (count - 1) / (limit - 1)) for k in range(limit)]


def tile_size(height: int, width: int, max_width: int = MAX_TILE_WIDTH) -> tuple[int, int]:
    """(height, width) of a frame's tile: the frame itself, or shrunk to ``max_width``."""
    scale = min(1.0, max_width / width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_tile(frame: np.ndarray, max_width: int = MAX_TILE_WIDTH) -> np.ndarray:
    """An RGB frame (H, W, 3) as its tile (a copy; the frame is not kept)."""
    tile_h, tile_w = tile_size(frame.shape[0], frame.shape[1], max_width)
    image = Image.fromarray(np.ascontiguousarray(frame))
    return np.asarray(image.resize((tile_w, tile_h), Image.Resampling.BILINEAR))


def contact_sheet(
    frames: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    columns: int | None = None,
    max_tile_width: int = MAX_TILE_WIDTH,
) -> Image.Image:
    """A grid image of RGB ``frames`` (each (H, W, 3), one size) with a text label under each tile.

    Draws every frame given: choose them first (:func:`evenly_chosen`) to bound the sheet.
    """
    count = len(frames)
    if count == 0:
        raise ValueError("no frames to draw")
    columns = columns or min(count, max(1, math.ceil(math.sqrt(count * 16 / 9))))
    rows = math.ceil(count / columns)
    tile_h, tile_w = tile_size(frames[0].shape[0], frames[0].shape[1], max_tile_width)
    sheet = Image.new("RGB", (columns * tile_w, rows * (tile_h + LABEL_HEIGHT)), "black")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (frame, label) in enumerate(zip(frames, labels)):
        x, y = (i % columns) * tile_w, (i // columns) * (tile_h + LABEL_HEIGHT)
        tile = Image.fromarray(np.ascontiguousarray(frame))
        if tile.size != (tile_w, tile_h):  # tiles from load_thumbnails are already the size
            tile = tile.resize((tile_w, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + tile_h + 2), label, fill="white", font=font)
    return sheet


def save_contact_sheet(path: str | Path, frames: Sequence[np.ndarray], labels: Sequence[str]) -> None:
    contact_sheet(frames, labels).save(path)
