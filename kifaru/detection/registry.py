"""The detectors that find animals in photos (for crops), each declared once, by name.

A detector entry says what it is and how to load it; :func:`resolve_photo_detector` loads it in an
explicit step (weights fetched and checked first), and the loaded detector answers
``find(pixels, threshold)`` with ``(box, score, category)`` per detection: boxes ``[x1, y1, x2,
y2]`` relative to the photo, categories MegaDetector's ("1" animal, "2" person, "3" vehicle).

- ``megadetector_lite``: zamba's YOLOX-tiny frame selector (weights from the zamba wheel); it
  knows one class, animal.
- ``megadetector_v5a``: the full MegaDetector v5a that zamba's image predict crops with, through
  the ``megadetector`` package (``pip install megadetector``) and its weights ``md_v5a.0.0.pt``
  (that package downloads them from GitHub; ``KIFARU_MEGADETECTOR_V5A_WEIGHTS`` names a local
  copy). Where either cannot be had, loading it says so and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from kifaru.exceptions import ConfigError
from kifaru.registry import Registry

ANIMAL, PERSON, VEHICLE = "1", "2", "3"


@dataclass(frozen=True)
class DetectorEntry:
    name: str
    description: str
    # (weights or None, device) -> a detector with ``find(pixels, threshold)``; called where the
    # detector runs (a worker process loads its own).
    load: Callable[[Optional[Path], str], Any]
    # Resolved before workers start: (weights given or None, device) -> the weights path to hand
    # to ``load`` (fetched and checked), or None when the detector finds its own.
    prepare: Callable[[Optional[Path], str], Optional[Path]]
    kept_threshold: float  # boxes kept in outputs down to this score


DETECTORS: Registry[DetectorEntry] = Registry("detector")


class _LiteOnPhotos:
    """MegadetectorLite on photos: its boxes, all animals."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.runtime = getattr(detector, "runtime", None)

    def find(self, pixels: np.ndarray, threshold: float) -> list[tuple[list[float], float, str]]:
        found = self.detector.detect([pixels], confidence=threshold)[0]
        return [([float(v) for v in box], float(score), ANIMAL) for box, score in zip(found.boxes, found.scores)]


def _load_lite(weights: Optional[Path], device: str) -> _LiteOnPhotos:
    from kifaru.detection.megadetector_lite import load_megadetector_lite

    return _LiteOnPhotos(load_megadetector_lite(weights=weights, device=device))


def _prepare_lite(weights: Optional[Path], device: str) -> Optional[Path]:
    from kifaru.detection.megadetector_lite import export_before_workers
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import resolve_weights

    path = resolve_weights(MEGADETECTOR_LITE, weights).resolve()
    export_before_workers(path, MEGADETECTOR_LITE.weights_sha256, device)
    return path


MEGADETECTOR_V5A_WEIGHTS_ENV = "KIFARU_MEGADETECTOR_V5A_WEIGHTS"
_V5A_HELP = (
    "the full MegaDetector v5a needs the `megadetector` package (`pip install megadetector`, with PyTorch) "
    f"and its weights md_v5a.0.0.pt (downloaded by that package from GitHub, or a local copy named by {MEGADETECTOR_V5A_WEIGHTS_ENV}); "
    "otherwise use detector: megadetector_lite (the default), or crop_images: false"
)


class _MegaDetector:
    """MegaDetector through its own package (``run_detector.load_detector``)."""

    def __init__(self, weights: Optional[Path], device: str) -> None:
        try:
            from megadetector.detection import run_detector
        except ImportError:
            raise ConfigError(f"detector megadetector_v5a: the megadetector package is not installed; {_V5A_HELP}") from None
        try:
            self.model = run_detector.load_detector(str(weights) if weights else "MDV5A", force_cpu=device == "cpu")
        except Exception as error:  # no network to fetch the weights, a damaged file, ...
            raise ConfigError(f"detector megadetector_v5a could not be loaded ({type(error).__name__}: {error}); {_V5A_HELP}") from None
        self.runtime = "pytorch"

    def find(self, pixels: np.ndarray, threshold: float) -> list[tuple[list[float], float, str]]:
        from PIL import Image

        result = self.model.generate_detections_one_image(Image.fromarray(pixels), "photo", detection_threshold=threshold)
        found = []
        for detection in result.get("detections") or []:
            x, y, width, height = (float(v) for v in detection["bbox"])  # MegaDetector: relative x, y, width, height
            found.append(([x, y, x + width, y + height], float(detection["conf"]), str(detection["category"])))
        return found


def _prepare_v5a(weights: Optional[Path], device: str) -> Optional[Path]:
    given = weights or (Path(os.environ[MEGADETECTOR_V5A_WEIGHTS_ENV]) if os.environ.get(MEGADETECTOR_V5A_WEIGHTS_ENV) else None)
    if given is not None and not given.is_file():
        raise ConfigError(f"detector megadetector_v5a: weights {given} not found; {_V5A_HELP}")
    _MegaDetector(given, device)  # loads it once here, so that a missing package or weights fail before the run
    return given


DETECTORS.register(
    "megadetector_lite",
    DetectorEntry(
        "megadetector_lite", "zamba's MegadetectorLite (YOLOX-tiny, animals only); weights from the zamba wheel",
        _load_lite, _prepare_lite, kept_threshold=0.05,
    ),
)  # fmt: skip
DETECTORS.register(
    "megadetector_v5a",
    DetectorEntry(
        "megadetector_v5a", "the full MegaDetector v5a (animal, person, vehicle), as zamba's image predict uses; needs the megadetector package",
        lambda weights, device: _MegaDetector(weights, device), _prepare_v5a, kept_threshold=0.005,
    ),
)  # fmt: skip
