"""Agreement with zamba 2.7.2's loader on the real clips.

The reference outputs were made by zamba itself (benchmarks/make_zamba_fixtures.py, in a separate
venv with zamba 2.7.2 and Debian's ffmpeg 5.1) and stored as small thumbnails plus, per frame,
the full-size mean and the index of the source frame zamba returned.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kifaru import load_video

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zamba_reference"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CONFIGS = sorted(MANIFEST["configs"])


def _cases():
    for name in CONFIGS:
        with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as stored:
            for i, path in enumerate(stored["paths"]):
                yield pytest.param(name, i, id=f"{name}-{Path(str(path)).name}")


@pytest.mark.parametrize("config_name,clip_number", list(_cases()))
def test_same_frames_as_zamba(shared_data, config_name, clip_number):
    with np.load(FIXTURES / f"{config_name}.npz", allow_pickle=False) as stored:
        reference = {key.rsplit("_", 1)[0]: stored[key] for key in stored.files if key.endswith(f"_{clip_number}")}
        clip = shared_data / str(stored["paths"][clip_number])
    assert str(reference["error"]) == ""
    loaded = load_video(clip, **MANIFEST["configs"][config_name])
    frames = loaded.frames
    assert frames.shape == tuple(reference["shape"])

    thumb_h, thumb_w = reference["thumbs"].shape[1:3]
    thumbs = np.stack([cv2.resize(f, (thumb_w, thumb_h), interpolation=cv2.INTER_AREA) for f in frames])
    per_frame_thumb = np.abs(thumbs.astype(float) - reference["thumbs"]).mean(axis=(1, 2, 3))
    per_frame_mean = np.abs(frames.mean(axis=(1, 2)) - reference["mean"]).max(axis=1)
    assert per_frame_thumb.max() <= 3.0, per_frame_thumb
    assert per_frame_mean.max() <= 2.0, per_frame_mean
    if "src_index" in reference and not MANIFEST["configs"][config_name].get("crop_bottom_pixels"):
        # The same source frames, except where two source frames look identical.
        different = np.asarray(loaded.source_indices) != reference["src_index"]
        assert per_frame_thumb[different].max(initial=0) <= 0.5
