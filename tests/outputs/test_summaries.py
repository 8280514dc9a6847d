"""What a record says to a person reviewing it: top class, detector, best frame, flags for review."""

from __future__ import annotations

import pytest

from kifaru.outputs import RunDescription
from kifaru.outputs.summaries import summarize
from kifaru.runs.records import MEDIA_IMAGE, STAGE_DECODE, Record

SPECIES = ("blank", "deer", "boar")
RUN = RunDescription("predict", species=SPECIES, threshold=0.5)


def clip(scores_per_frame, probabilities=None):
    """A clip whose frame i holds one box scoring scores_per_frame[i] (None: no box)."""
    frames = [
        {"frame_number": i * 10, "time": float(i), "detections": [] if s is None else [[0.1 * i, 0.1, 0.1 * i + 0.2, 0.5, s]]}
        for i, s in enumerate(scores_per_frame)
    ]
    return Record("a.mp4", frame_rate=10.0, frames=frames, outputs={} if probabilities is None else {"probabilities": probabilities})


def test_the_best_frame_is_the_one_with_the_most_confident_box_and_only_boxes_over_the_threshold_are_drawn():
    s = summarize(clip([0.3, 0.9, 0.6, None]), RunDescription("detect", threshold=0.5))
    assert (s.best_frame_number, s.best_frame_time, s.max_confidence) == (10, 1.0, 0.9)
    assert [b.score for b in s.boxes] == [0.9]
    assert s.label == "animal" and s.animal_seen and s.species is None
    assert [(seg.start, seg.end) for seg in s.segments] == [(1.0, 2.0)]
    # Nothing over the threshold: blank, and the card shows the first frame.
    quiet = summarize(clip([0.3, 0.2]), RunDescription("detect", threshold=0.5))
    assert quiet.label == "blank" and quiet.best_frame_number == 0 and quiet.boxes == ()


@pytest.mark.parametrize(
    ("scores", "probabilities", "review"),
    [
        ([0.9], [0.1, 0.8, 0.1], []),  # an animal, and a confident species: nothing to review
        ([0.9], [0.1, 0.45, 0.45], ["low confidence: deer at 0.45, under 0.5"]),
        ([0.9], [0.8, 0.1, 0.1], ["the detector found an animal (0.90) but the classifier says blank"]),
        ([None], [0.1, 0.2, 0.7], ["the detector found no animal but the classifier says boar (0.70)"]),
        ([None], [0.9, 0.05, 0.05], []),  # both say nothing is there
    ],
)
def test_files_are_flagged_for_review_when_unsure_or_when_detector_and_classifier_disagree(scores, probabilities, review):
    assert list(summarize(clip(scores, probabilities), RUN).review) == review


def test_review_below_is_the_user_s_and_no_detector_means_no_disagreement_to_flag():
    record = clip([None], [0.1, 0.2, 0.7])
    assert summarize(record, RUN, review_below=0.8).review[0] == "low confidence: boar at 0.70, under 0.8"
    without_detector = RunDescription("predict", species=SPECIES)  # frames were not scored
    assert summarize(record, without_detector).review == ()


def test_a_photo_s_classes_come_from_its_crops_and_a_person_box_is_not_an_animal():
    photo = Record("p.jpg", media=MEDIA_IMAGE)
    photo.frames = [{"frame_number": 0, "time": 0.0, "detections": [[0, 0, 0.5, 0.5, 0.9], [0.5, 0.5, 1, 1, 0.8]], "categories": ["1", "2"]}]
    photo.outputs["crops"] = [{"detection": 0, "conf": 0.9, "probabilities": [0.1, 0.7, 0.2]}]
    s = summarize(photo, RUN)
    assert s.species == "deer" and [b.category for b in s.boxes] == ["animal", "person"]
    person_only = Record("q.jpg", media=MEDIA_IMAGE, frames=[{"frame_number": 0, "time": 0.0, "detections": [[0, 0, 1, 1, 0.9]], "categories": ["2"]}])
    assert summarize(person_only, RunDescription("detect", threshold=0.5)).animal_seen is False


def test_a_failure_keeps_its_stage_and_reason():
    s = summarize(Record.failure("x.mp4", STAGE_DECODE, "cannot be opened"), RUN)
    assert (s.failed, s.stage, s.reason, s.label) == (True, "decode", "cannot be opened", "failed")
