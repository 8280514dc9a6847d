"""Detector boxes as the pixel rectangles cut out of a photo: zamba's arithmetic
(``zamba.images.bbox.absolute_bbox`` on MegaDetector's relative ``[x, y, width, height]``): each
of x, y, width and height scaled to pixels and truncated, the right and bottom edges then
``x + width`` and ``y + height``."""

from __future__ import annotations

from typing import Sequence


def pixel_box(relative_xywh: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) in pixels of a box given relative to a ``width`` x ``height`` photo."""
    x, y, w, h = (float(v) for v in relative_xywh)
    x1, y1 = int(x * width), int(y * height)
    return x1, y1, x1 + int(w * width), y1 + int(h * height)


def xyxy_to_xywh(box: Sequence[float]) -> list[float]:
    """A relative ``[x1, y1, x2, y2]`` box as MegaDetector's ``[x, y, width, height]``, cut to the
    photo: a detector's box may reach past its edges, MegaDetector's format (and a crop) may not."""
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
    return [x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)]
