"""Annotated clips: the boxes are where the detector put them on its scored frames, and moved
linearly between them (checked by the outline's colour at the box edges of the decoded copy)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from kifaru.outputs import RunDescription, get_writer
from kifaru.outputs.results_file import RESULTS_FILE
from kifaru.report.annotated import boxes_at, hold_frames, write_annotated_videos
from kifaru.report.thumbnails import BOX_COLOURS, BOX_WIDTH
from kifaru.runs.journal import file_fingerprint
from kifaru.runs.records import Record
from kifaru.segments.tracker import link_tracks
from tests.media import make_clip

HEIGHT, WIDTH = 96, 160
FRAMES, SCORED_EVERY = 21, 5
GROUND, ANIMAL = (60, 90, 60), (200, 120, 60)


def animal_box(index: int) -> tuple[float, float, float, float]:
    """The animal walks right by 4 px a frame: its box relative to the frame."""
    x1 = 8 + 4 * index
    return (x1 / (WIDTH - 1), 30 / (HEIGHT - 1), (x1 + 40) / (WIDTH - 1), 70 / (HEIGHT - 1))


def frame(index: int) -> np.ndarray:
    pixels = np.full((HEIGHT, WIDTH, 3), GROUND, np.uint8)
    x1 = 8 + 4 * index
    pixels[30:71, x1 : x1 + 41] = ANIMAL
    return pixels


def scored(numbers):
    return [{"frame_number": n, "time": n / 10, "detections": [[*animal_box(n), 0.9]]} for n in numbers]


def test_a_box_moves_linearly_between_scored_frames_and_is_held_half_a_gap_at_the_ends():
    frames = scored([5, 10, 15])
    tracks = link_tracks(frames, 0.5)
    hold = hold_frames(frames)
    assert hold == 2.5
    assert boxes_at(tracks, 10, hold)[0].box == pytest.approx(animal_box(10))
    assert boxes_at(tracks, 12, hold)[0].box == pytest.approx(animal_box(12))  # the animal moves linearly
    assert boxes_at(tracks, 3, hold)[0].box == pytest.approx(animal_box(5))  # held before the first
    assert boxes_at(tracks, 2, hold) == [] and boxes_at(tracks, 18, hold) == []  # beyond half a gap: gone


@pytest.fixture
def annotated(tmp_path):
    clip = make_clip(tmp_path / "data" / "cam1" / "walk.mp4", fps=10, size=(HEIGHT, WIDTH), frames=[frame(i) for i in range(FRAMES)])
    record = Record(str(clip), fingerprint=file_fingerprint(clip), frame_rate=10.0, frames=scored(range(0, FRAMES, SCORED_EVERY)),
                    outputs={"probabilities": [0.1, 0.9]})  # fmt: skip
    results = tmp_path / "results"
    results.mkdir()
    run = RunDescription("predict", species=("blank", "wild_boar"), model="m.ckpt", threshold=0.5, root=tmp_path / "data", base=tmp_path)
    (results / RESULTS_FILE).write_text(get_writer("results_jsonl").render([record], run))
    made = write_annotated_videos(results, tmp_path / "annotated")
    assert made.failed == [] and made.written == [tmp_path / "annotated" / "cam1" / "walk.mp4"]
    with av.open(str(made.written[0])) as container:
        return [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]


def test_the_copy_has_every_frame_and_boxes_where_the_detector_put_them_and_between(annotated):
    assert len(annotated) == FRAMES and annotated[0].shape == (HEIGHT, WIDTH, 3)
    yellow = np.array(BOX_COLOURS["animal"])
    inset = BOX_WIDTH // 2  # the outline's middle: drawn inwards from the box's edge

    def near(pixel, colour):
        # H.264 at crf 20 with 4:2:0 chroma moves an edge's colour by a few tens; yellow is over 100
        # from ground and animal in every channel that tells them apart (blue, then red or green).
        return np.abs(pixel - colour).max() < 70

    for index in (5, 7, 12):  # scored, and two in between
        x1, y1, x2, y2 = (round(v * (n - 1)) for v, n in zip(animal_box(index), (WIDTH, HEIGHT, WIDTH, HEIGHT)))
        pixels = annotated[index]
        middle_y = (y1 + y2) // 2
        assert near(pixels[middle_y, x1 + inset], yellow), (index, pixels[middle_y, x1 + inset])
        assert near(pixels[middle_y, x2 - inset], yellow), (index, pixels[middle_y, x2 - inset])
        assert near(pixels[y2 - inset, (x1 + x2) // 2], yellow), index
        assert near(pixels[middle_y, max(0, x1 - 6)], np.array(GROUND))  # outside: the ground
        assert near(pixels[middle_y, (x1 + x2) // 2], np.array(ANIMAL))  # inside: the animal, not painted over
