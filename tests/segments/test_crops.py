"""Species per segment from an image classifier on each track's own crops: two animals seen at
once get their own species."""

from __future__ import annotations

import numpy as np
import pytest

from kifaru.outputs import RunDescription
from kifaru.runs.records import Record
from kifaru.segments import crops as crops_module
from kifaru.segments.crops import CROPS_PER_TRACK, SEGMENT_CROPS, CropClassifier, classify_segment_crops, crops_to_classify
from kifaru.segments.segments import record_segments
from tests.media import make_clip

HEIGHT, WIDTH = 96, 192
RED, BLUE, GROUND = (220, 30, 30), (30, 30, 220), (90, 110, 80)
CLASSES = ("blank", "red_animal", "blue_animal")


def boxes(index):
    """A red animal walking right on the left, a blue one walking left on the right."""
    return [(8 + 2 * index, 20, 48 + 2 * index, 60, RED), (150 - 2 * index, 30, 184 - 2 * index, 70, BLUE)]


def frame(index):
    pixels = np.full((HEIGHT, WIDTH, 3), GROUND, np.uint8)
    for x1, y1, x2, y2, colour in boxes(index):
        pixels[y1:y2, x1:x2] = colour
    return pixels


class ColourClassifier:
    """Stands in for the image network: says which colour fills the crop it is given (the ground
    when the crop was cut from the wrong place), so the test sees which pixels were classified."""

    species = list(CLASSES)

    @classmethod
    def from_file(cls, path, device="cpu"):
        return cls()

    def to_input(self, image):
        return np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)

    def predict_proba(self, inputs):
        out = []
        for r, g, b in inputs:
            scores = np.array([1.0, 0.0, 0.0]) if g > 80 else (np.array([0.05, 0.9, 0.05]) if r > b else np.array([0.05, 0.05, 0.9]))
            out.append(scores)
        return np.asarray(out)


@pytest.fixture
def two_animals(tmp_path, monkeypatch):
    import kifaru.images.classifier

    monkeypatch.setattr(kifaru.images.classifier, "ImageClassifier", ColourClassifier)
    clip = make_clip(tmp_path / "two.mp4", fps=4, size=(HEIGHT, WIDTH), frames=[frame(i) for i in range(12)])
    frames = [
        {"frame_number": i, "time": i / 4, "detections": [[x1 / WIDTH, y1 / HEIGHT, x2 / WIDTH, y2 / HEIGHT, 0.6 + 0.01 * i] for x1, y1, x2, y2, _ in boxes(i)]}
        for i in range(0, 12, 2)
    ]
    # The clip as a whole: one class for both, as a video classifier says.
    return Record(str(clip), frame_rate=4.0, frames=frames, outputs={"probabilities": [0.1, 0.7, 0.2]})


def test_each_track_s_most_confident_boxes_are_the_ones_classified(two_animals):
    chosen = crops_to_classify(two_animals.frames, 0.5)
    assert len(chosen) == 2 * CROPS_PER_TRACK
    assert {n for n, _ in chosen} == {6, 8, 10}  # scores grow with time: the last three scored frames


def test_two_animals_at_once_each_get_the_species_of_their_own_crops(two_animals, tmp_path):
    classifier = CropClassifier("colours.ckpt", tmp_path / "none.ckpt", "0" * 64, CLASSES)
    classify_segment_crops([two_animals], 0.5, classifier, tmp_path)
    assert len(two_animals.outputs[SEGMENT_CROPS]) == 2 * CROPS_PER_TRACK
    run = RunDescription("predict", species=("blank", "deer", "boar"), threshold=0.5, crop_classifier=classifier.describe())
    segments = record_segments(two_animals, run, 0.5)
    by_place = sorted(segments, key=lambda s: s.best_box[0])
    assert [(s.species, s.species_from) for s in by_place] == [("red_animal", "crops"), ("blue_animal", "crops")]
    assert by_place[0].probability == pytest.approx(0.9)
    # Without the crops' classifier in the run, the clip's species labels both.
    plain = record_segments(two_animals, RunDescription("predict", species=("blank", "deer", "boar"), threshold=0.5), 0.5)
    assert {(s.species, s.species_from) for s in plain} == {("deer", "clip")}


def test_a_clip_that_cannot_be_read_again_keeps_the_clip_s_species_and_says_why(two_animals, tmp_path):
    from pathlib import Path

    Path(two_animals.item).unlink()
    classify_segment_crops([two_animals], 0.5, CropClassifier("c", tmp_path / "c.ckpt", "0" * 64, CLASSES), tmp_path)
    assert SEGMENT_CROPS not in two_animals.outputs
    assert any("could not be read again" in note for note in two_animals.notes)


def test_an_unknown_model_name_lists_the_image_models(tmp_path):
    from kifaru.exceptions import KifaruError

    with pytest.raises(KifaruError, match="lila.science"):
        crops_module.resolve_crop_classifier("no_such_model", cache_dir=tmp_path)
