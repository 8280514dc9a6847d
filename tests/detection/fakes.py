"""Stand-in detectors for tests: no weights, no model, answers that follow from the pixels.

The synthetic clips of ``tests.media`` show each frame's index as stripes; these detectors read it
back from the fitted frames they are given, so a test knows exactly which frames (and which file,
when each file shows its own range of indices) reached the detector.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from kifaru.detection.megadetector_lite import FrameDetections
from tests.media import read_index


class IndexScoringDetector:
    """Scores each fitted frame by the index it shows; records what it was given.

    ``box``: the box (x1, y1, x2, y2, relative to the frame) given to every frame with a score.
    ``interrupt_at_call``: raise ``KeyboardInterrupt`` on that call of ``detect_fitted`` (1-based),
    as a user pressing Ctrl-C in the middle of a run. ``device``/``runtime`` as the real detector's.
    """

    device = "cpu"
    runtime = "stand-in"
    uses_every_core = False

    @staticmethod
    def submit_size(frame_batch_size: int) -> int:
        return frame_batch_size

    def __init__(
        self,
        scores: dict[int, float],
        box: Sequence[float] = (0.1, 0.1, 0.5, 0.5),
        interrupt_at_call: Optional[int] = None,
    ):
        self.scores = scores
        self.box = tuple(box)
        self.interrupt_at_call = interrupt_at_call
        self.calls: list[dict] = []

    def detect_fitted(self, fitted, frame_sizes, **settings):
        self.calls.append({"fitted": list(fitted), "sizes": list(frame_sizes), **settings})
        if self.interrupt_at_call is not None and len(self.calls) == self.interrupt_at_call:
            raise KeyboardInterrupt
        found = []
        for image in fitted:
            score = self.scores.get(read_index(image), 0.0)
            # As the real detector: a box scoring below the confidence asked for is dropped.
            score = score if score >= settings.get("confidence", 0.25) else 0.0
            boxes = np.array([self.box]) if score else np.zeros((0, 4))
            found.append(FrameDetections(boxes, np.array([score] if score else [])))
        return found

    def indices_seen(self) -> list[list[int]]:
        """Per call, the indices the frames it was given show."""
        return [[read_index(image) for image in call["fitted"]] for call in self.calls]


class StandInLoading:
    """``load_megadetector_lite`` replaced by one handing out ``detector``: records what it was
    asked for (its keyword arguments), so a test sees whether and how the CLI loaded it."""

    def __init__(self, monkeypatch, detector) -> None:
        import kifaru.detection.megadetector_lite as module

        self.calls: list[dict] = []
        self.detector = detector

        def load(**kwargs):
            self.calls.append(kwargs)
            return self.detector

        monkeypatch.setattr(module, "load_megadetector_lite", load)
