"""Boxes for image tests: a stand-in detector whose answer follows from the pixels, and
MegaDetector batch files of given boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

ANIMAL_BOX = [0.25, 0.2, 0.5, 0.6]  # relative x, y, width, height
WEAK_BOX = [0.0, 0.0, 0.2, 0.2]


class BrightnessDetector:
    """Finds one "animal" in a photo whose mean brightness is above 60 (confidence its mean over
    255), and always a weak box (confidence 0.1, kept in outputs but not cropped at 0.2)."""

    def find(self, pixels: np.ndarray, threshold: float) -> list[tuple[list[float], float, str]]:
        found = []
        mean = float(pixels.mean())
        if mean > 60:
            x, y, w, h = ANIMAL_BOX
            found.append(([x, y, x + w, y + h], mean / 255, "1"))
        found.append(([0.0, 0.0, 0.2, 0.2], 0.1, "1"))
        return [f for f in found if f[1] >= threshold]


def write_md_boxes(path: Path, boxes: dict[str, Sequence[tuple[Sequence[float], float]]]) -> Path:
    """A MegaDetector batch file giving ``boxes`` (file -> [(relative xywh, confidence)])."""
    images = [
        {"file": name, "detections": [{"category": "1", "conf": conf, "bbox": list(bbox)} for bbox, conf in found]}
        for name, found in boxes.items()
    ]
    path.write_text(json.dumps({"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"}, "images": images}))
    return path
