"""Contact sheets: the selected frames in a grid, each labelled with where it came from."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 16


def contact_sheet(
    frames: np.ndarray,
    labels: Sequence[str],
    *,
    columns: int | None = None,
    max_tile_width: int = 320,
) -> Image.Image:
    """A grid image of RGB ``frames`` (N, H, W, 3) with a text label under each tile."""
    count = len(frames)
    if count == 0:
        raise ValueError("no frames to draw")
    columns = columns or min(count, max(1, math.ceil(math.sqrt(count * 16 / 9))))
    rows = math.ceil(count / columns)
    height, width = frames.shape[1:3]
    scale = min(1.0, max_tile_width / width)
    tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    sheet = Image.new("RGB", (columns * tile_w, rows * (tile_h + LABEL_HEIGHT)), "black")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (frame, label) in enumerate(zip(frames, labels)):
        x, y = (i % columns) * tile_w, (i // columns) * (tile_h + LABEL_HEIGHT)
        tile = Image.fromarray(np.ascontiguousarray(frame)).resize((tile_w, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, (x, y))
        draw.text((x + 2, y + tile_h + 2), label, fill="white", font=font)
    return sheet


def save_contact_sheet(path: str | Path, frames: np.ndarray, labels: Sequence[str]) -> None:
    contact_sheet(frames, labels).save(path)
