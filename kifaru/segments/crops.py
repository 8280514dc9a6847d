"""Species per segment from an image classifier (``--segment-classifier``): each track's most
confident boxes are cut out of their frames and classified, and the segment takes the class its
crops agree on (their mean probabilities), instead of the clip's.

This is how MegaDetector's users label animals (a detector, then a classifier on its crops),
applied to the detector's tracks through a clip: two animals of different species seen at once
get their own species, and a clip with one class per clip still gets one class per visit.

:func:`resolve_crop_classifier` is the explicit step (weights fetched and the checkpoint read
before any clip is read); :func:`classify_segment_crops` runs once a run's records are done and
adds each clip's ``outputs["segment_crops"]``: ``[{"frame_number", "box", "probabilities"}]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from kifaru.runs.records import MEDIA_VIDEO, Record
from kifaru.segments.tracker import Track, link_tracks

CROPS_PER_TRACK = 3  # a track's most confident boxes that are classified
SEGMENT_CROPS = "segment_crops"


@dataclass(frozen=True)
class CropClassifier:
    name: str  # the model's name, or the checkpoint's file name
    checkpoint: Path
    sha256: str
    species: tuple[str, ...]
    device: str = "cpu"

    def describe(self) -> dict[str, Any]:
        """What the run's outputs say of it (kifaru.outputs.RunDescription.crop_classifier)."""
        return {"model": self.name, "sha256": self.sha256, "species": list(self.species)}


def resolve_crop_classifier(model: str, *, cache_dir: Optional[Path] = None, region: str = "us", device: str = "cpu") -> CropClassifier:
    """``model``: an official image model's name (lila.science, speciesnet) or an image checkpoint
    file; fetched and read now. ConfigError naming the model otherwise."""
    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.models.download import sha256_of
    from kifaru.models.model_classes import require_media
    from kifaru.models.registry import image_model_entry
    from kifaru.models.s3 import normalize_region
    from kifaru.models.weights import resolve_weights, stamped_sha256

    path = Path(model)
    if path.suffix.lower() in (".ckpt", ".pt", ".pth") or path.exists():
        name = path.name
    else:
        path = resolve_weights(image_model_entry(model), region=normalize_region(region), cache_dir=cache_dir)
        name = model
    info = read_checkpoint_info(path)
    require_media(info.model_class, "image", path)
    return CropClassifier(name, path, stamped_sha256(path) or sha256_of(path), tuple(info.species), device)


def crops_to_classify(frames: Sequence[dict], threshold: float) -> list[tuple[int, tuple[float, ...]]]:
    """(frame number, box) of each track's CROPS_PER_TRACK most confident boxes."""
    chosen = []
    for track in link_tracks(frames, threshold):
        best = sorted(track.sightings, key=lambda s: -s.score)[:CROPS_PER_TRACK]
        chosen += [(s.frame_number, tuple(s.box)) for s in best]
    return chosen


def classify_segment_crops(records: Sequence[Record], threshold: float, classifier: CropClassifier, base: Path) -> None:
    """Add ``outputs["segment_crops"]`` to every clip read (see the module). A clip whose frames
    cannot be read again gets a note instead, and keeps the clip's species for its segments."""
    from kifaru.images.classifier import ImageClassifier
    from kifaru.outputs.paths import absolute

    wanted = [(r, crops_to_classify(r.frames, threshold)) for r in records if not r.failed and r.media == MEDIA_VIDEO]
    wanted = [(r, crops) for r, crops in wanted if crops]
    if not wanted:
        return
    network = ImageClassifier.from_file(classifier.checkpoint, classifier.device)
    for record, crops in wanted:
        try:
            pictures = _crop_pictures(absolute(record.item, base), crops)
        except Exception as error:  # read once already: this is a file changed or moved since
            record.notes.append(f"segments keep the clip's species: its frames could not be read again to classify the crops ({error})")
            continue
        probabilities = network.predict_proba(np.stack([network.to_input(p) for p in pictures]))
        record.outputs[SEGMENT_CROPS] = [
            {"frame_number": n, "box": list(box), "probabilities": [round(float(p), 6) for p in row]}
            for (n, box), row in zip(crops, probabilities)
        ]


def label_segments(records: Sequence[Record], classifier: Optional[CropClassifier], threshold: Optional[float], base: Path, partial: Optional[tuple[int, int]]) -> None:
    """A run's write step: the segments' crops classified, when the run has a classifier for them
    and finished (an interrupted run's partial outputs keep the clips' species: it stops at once)."""
    if classifier is None or threshold is None or partial is not None:
        return
    classify_segment_crops(records, threshold, classifier, base)


def _crop_pictures(path: Path, crops: Sequence[tuple[int, tuple[float, ...]]]) -> list[Any]:
    from PIL import Image

    from kifaru.video.decode import PyAVVideoSource

    source = PyAVVideoSource(path)
    try:
        frames = {f.index: f.to_rgb() for f in source.decode(sorted({n for n, _ in crops}), threaded=False)}
    finally:
        source.close()
    pictures = []
    for number, (x1, y1, x2, y2) in crops:
        if number not in frames:
            raise ValueError(f"frame {number} could not be decoded")
        height, width = frames[number].shape[:2]
        left, top = int(np.floor(x1 * width)), int(np.floor(y1 * height))
        right, bottom = max(left + 1, int(np.ceil(x2 * width))), max(top + 1, int(np.ceil(y2 * height)))
        pictures.append(Image.fromarray(frames[number][top:bottom, left:right]))
    return pictures


def track_classes(track: Track, crops: Sequence[dict]) -> Optional[np.ndarray]:
    """The mean probabilities of a track's classified crops (None: none of its boxes was classified)."""
    mine = {(s.frame_number, tuple(s.box)) for s in track.sightings}
    rows = [c["probabilities"] for c in crops if (c["frame_number"], tuple(c["box"])) in mine]
    return np.mean(np.asarray(rows, dtype=np.float64), axis=0) if rows else None
