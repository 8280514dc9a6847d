"""Agreement with zamba 2.7.2's loader on the real clips: the same frames, bit for bit.

The reference outputs were made by zamba itself (benchmarks/make_zamba_fixtures.py, in a separate
venv with zamba 2.7.2 and Debian's ffmpeg 5.1) and stored per frame as the sha1 of the full-size
frame zamba returned, the index of the source frame it is (the first source frame with those
bytes), a small thumbnail and the mean.

kifaru decodes with the same FFmpeg libraries and converts, crops and resizes the way zamba's
ffmpeg does, so every frame of all 147 cases is bit-identical (thumbnail difference 0.000): any
difference is a regression, and there is no tolerance to justify. The thumbnails only describe a
failure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kifaru import load_video

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zamba_reference"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CONFIGS = sorted(MANIFEST["configs"])
# Configs whose frames are cropped or resized have no source frame with their bytes (src_index
# -1): their source frames are those of the config that selects the same way, unchanged (a crop
# and a resize choose no frames), its first ``count``: td_defaults is fps=4 with total_frames=16.
SOURCE_FRAMES_FROM = {"td_defaults_no_detector": ("fps", 16)}


def _cases():
    for name in CONFIGS:
        with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as stored:
            for i, path in enumerate(stored["paths"]):
                yield pytest.param(name, i, id=f"{name}-{Path(str(path)).name}")


def _stored(config_name: str, clip_number: int) -> tuple[dict[str, np.ndarray], str]:
    with np.load(FIXTURES / f"{config_name}.npz", allow_pickle=False) as stored:
        reference = {key.rsplit("_", 1)[0]: stored[key] for key in stored.files if key.endswith(f"_{clip_number}")}
        return reference, str(stored["paths"][clip_number])


def _reference_source_indices(config_name: str, path: str, reference: dict[str, np.ndarray]) -> np.ndarray:
    if config_name not in SOURCE_FRAMES_FROM:
        return reference["src_index"]
    selecting, count = SOURCE_FRAMES_FROM[config_name]
    with np.load(FIXTURES / f"{selecting}.npz", allow_pickle=False) as stored:
        clip_number = [str(p) for p in stored["paths"]].index(path)
        return stored[f"src_index_{clip_number}"][:count]


@pytest.mark.parametrize("config_name,clip_number", list(_cases()))
def test_same_frames_as_zamba(shared_data, config_name, clip_number):
    reference, path = _stored(config_name, clip_number)
    assert str(reference["error"]) == ""
    loaded = load_video(shared_data / path, **MANIFEST["configs"][config_name])
    frames = loaded.frames
    assert frames.shape == tuple(reference["shape"])

    hashes = np.stack([np.frombuffer(hashlib.sha1(frame.tobytes()).digest(), np.uint8) for frame in frames])
    differing = np.flatnonzero((hashes != reference["sha1"]).any(axis=1))
    if len(differing):
        thumb_h, thumb_w = reference["thumbs"].shape[1:3]
        thumbs = np.stack([cv2.resize(frames[k], (thumb_w, thumb_h), interpolation=cv2.INTER_AREA) for k in differing])
        levels = np.abs(thumbs.astype(float) - reference["thumbs"][differing]).mean(axis=(1, 2, 3))
        pytest.fail(f"{len(differing)} of {len(frames)} frames differ from zamba's: frames {differing[:8].tolist()}, thumbnails by {np.round(levels[:8], 3).tolist()} levels")

    # Bit-identical frames may still be other frames of a still scene: the same source frames too.
    # The reference names the first source frame with a frame's bytes, so where a clip repeats a
    # picture exactly (4 frames of one clip at fps=4), ours may be a later one of the repeats
    # (its bytes are zamba's, checked above), never an earlier one.
    expected = _reference_source_indices(config_name, path, reference)
    ours = np.asarray(loaded.source_indices)
    assert (expected >= 0).all() and len(ours) == len(expected)
    assert (ours >= expected).all(), (ours.tolist(), expected.tolist())
