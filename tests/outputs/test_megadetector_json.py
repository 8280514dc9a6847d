"""``kifaru.outputs.megadetector_json``: records in, MegaDetector batch format 1.6 out, with species
as classifications, boxes down to the kept threshold, failures as the format says, and paths
relative to the run's root (``kifaru.outputs.paths``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kifaru.config import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.outputs import RunDescription, write_outputs
from kifaru.outputs.megadetector_json import megadetector_data
from kifaru.outputs.paths import choose_root
from kifaru.runs.records import MEDIA_IMAGE, STAGE_DECODE, Record
from kifaru.video.loader import KEPT_BOX_THRESHOLD

SPECIES = ["antelope", "blank", "chimpanzee", "duiker", "elephant", "leopard", "porcupine"]
LOADER = VideoLoaderConfig(megadetector_lite_config={"confidence": 0.25})


def _records(root: Path) -> list[Record]:
    probabilities = [0.05, 0.01, 0.9, 0.2, 0.3, 0.002, 0.7]
    return [
        Record(
            str(root / "site a" / "clip.mp4"),
            fingerprint=[1, 2],
            frame_rate=30.0,
            frames=[
                {"frame_number": 0, "time": 0.0, "detections": [[0.1, 0.2, 0.5, 0.6, 0.81], [0.6, 0.6, 0.7, 0.9, 0.12]]},
                {"frame_number": 30, "time": 1.0, "detections": [[0.2, 0.2, 0.5, 0.6, 0.03]]},  # below the kept threshold
                {"frame_number": 60, "time": 2.0, "detections": []},
            ],
            frames_used=[0, 0, 30, 60],
            outputs={"probabilities": probabilities},
        ),
        Record(str(root / "empty.mp4"), frame_rate=25.0, frames=[{"frame_number": 0, "time": 0.0, "detections": []}], outputs={"probabilities": [0.1] * 7}),
        Record.failure(str(root / "broken.avi"), STAGE_DECODE, "cannot be opened as a video (invalid data)"),
        Record(str(root / "photo.jpg"), media=MEDIA_IMAGE, frames=[{"frame_number": 0, "time": 0.0, "detections": [[0.0, 0.1, 0.4, 0.5, 0.66]]}], outputs={"probabilities": [0.0, 0.0, 0.0, 0.0, 0.0, 0.99, 0.0]}),
    ]


def _run(root: Path, **fields) -> RunDescription:
    return RunDescription("predict", loader_config=LOADER, species=SPECIES, model="time_distributed.ckpt", root=root, base=root, **fields)


def test_videos_carry_frames_boxes_and_the_clips_species(tmp_path):
    data = megadetector_data(_records(tmp_path), _run(tmp_path))
    assert data["info"]["format_version"] == "1.6"
    assert data["classification_categories"] == {str(i): name for i, name in enumerate(SPECIES)}
    clip, empty, broken, photo = data["images"]
    assert clip["file"] == "site a/clip.mp4"  # relative to the root, forward slashes
    assert clip["frame_rate"] == 30.0 and clip["frames_processed"] == [0, 30, 60]
    # Boxes down to the kept threshold (0.12 is kept although under the 0.25 confidence; 0.03 is not).
    assert [(d["frame_number"], d["conf"]) for d in clip["detections"]] == [(0, 0.81), (0, 0.12)]
    assert clip["detections"][0]["bbox"] == [0.1, 0.2, 0.4, 0.4]  # x, y, width, height
    # The clip's five most likely species, most likely first, on each of its boxes.
    expected = [["2", 0.9], ["6", 0.7], ["4", 0.3], ["3", 0.2], ["0", 0.05]]
    assert all(d["classifications"] == expected for d in clip["detections"])
    assert empty["detections"] == [] and empty["frames_processed"] == [0]  # kept, with no boxes
    assert broken == {"file": "broken.avi", "frame_rate": -1.0, "frames_processed": [], "failure": "cannot be opened as a video (invalid data)", "detections": None}
    assert "frame_rate" not in photo and "frame_number" not in photo["detections"][0]
    assert photo["detections"][0]["classifications"][0] == ["5", 0.99]
    settings = data["info"]["custom_metadata"]["detector_settings"]
    assert settings["confidence"] == 0.25 and settings["boxes_kept_down_to"] == KEPT_BOX_THRESHOLD
    assert data["info"]["detector_metadata"]["conservative_detection_threshold"] == 0.25
    assert data["info"]["classifier"] == "time_distributed.ckpt"
    assert data["info"]["custom_metadata"]["paths_relative_to"] == str(tmp_path)


def test_without_a_detector_entries_have_no_boxes_and_the_frames_the_model_saw(tmp_path):
    records = [Record(str(tmp_path / "a.mp4"), frame_rate=10.0, frames_used=[0, 5, 5, 10], outputs={"probabilities": [1.0] + [0.0] * 6})]
    run = RunDescription("predict", loader_config=VideoLoaderConfig(), species=SPECIES, root=tmp_path, base=tmp_path)
    data = megadetector_data(records, run)
    assert data["images"][0]["frames_processed"] == [0, 5, 10] and data["images"][0]["detections"] == []
    assert "detector" not in data["info"] and "no detector ran" in data["info"]["custom_metadata"]["detector_settings"]


def test_a_partial_run_says_so_and_the_file_is_written_atomically(tmp_path):
    written = write_outputs(tmp_path / "out", ["megadetector_json"], _records(tmp_path), _run(tmp_path, partial=(2, 9)), {"megadetector_json": "md.json"})
    data = json.loads(written["megadetector_json"].read_text(encoding="utf-8"))
    assert written["megadetector_json"].name == "md.json"
    assert data["info"]["custom_metadata"]["partial"]["files_done"] == 2
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["md.json"]  # no temporary file left


def test_the_root_is_the_given_folder_the_data_folder_or_the_one_holding_every_file(tmp_path):
    names = [str(tmp_path / "data" / "a" / "x.mp4"), "data/b/y.mp4"]  # a relative one: read from base
    assert choose_root(names, tmp_path, relative_to=None, data_dir=None) == (tmp_path / "data").resolve()
    assert choose_root(names, tmp_path, relative_to=None, data_dir=tmp_path / "data" / "a") == (tmp_path / "data").resolve()
    assert choose_root(names, tmp_path, relative_to=tmp_path, data_dir=tmp_path / "data") == tmp_path.resolve()
    assert choose_root(names, tmp_path, relative_to=Path("data"), data_dir=None) == (tmp_path / "data").resolve()
    with pytest.raises(ConfigError, match=r"--relative-to .*a: .*y.mp4 is not under it \(1 of 2 files"):
        choose_root(names, tmp_path, relative_to=tmp_path / "data" / "a", data_dir=None)
