"""Per-frame pixel operations, in pipeline order: crop the bottom, resize for frame selection,
resize for the model, channel order."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

Size = tuple[int, int]  # (height, width)


def crop_bottom(frame: np.ndarray, rows: int) -> np.ndarray:
    """Remove ``rows`` rows (a camera's timestamp bar) from the bottom."""
    return frame[: frame.shape[0] - rows] if rows > 0 else frame


def resize_for_selection(frame: np.ndarray, size: Optional[Size]) -> np.ndarray:
    """Resize to the frame-selection size; bicubic, as FFmpeg's scale filter does by default."""
    if size is None or frame.shape[:2] == size:
        return frame
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def resize_for_model(frame: np.ndarray, size: Optional[Size]) -> np.ndarray:
    """Resize to the model's input size: area interpolation when shrinking, bilinear when
    enlarging (decided on the width, as zamba does)."""
    if size is None or frame.shape[:2] == size:
        return frame
    enlarging = frame.shape[1] < size[1]
    interpolation = cv2.INTER_LINEAR if enlarging else cv2.INTER_AREA
    return cv2.resize(frame, (size[1], size[0]), interpolation=interpolation)


def to_pix_fmt(frames: np.ndarray, pix_fmt: str) -> np.ndarray:
    """RGB frames in the requested channel order (rgb24 or bgr24)."""
    return np.ascontiguousarray(frames[..., ::-1]) if pix_fmt == "bgr24" else frames
