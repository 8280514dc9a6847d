"""Sample camera-trap-like clips made from real photographs that scikit-image ships.

A fresh machine has no camera-trap footage; these clips let the README's first command run end to
end, offline. Each is a scene from skimage's grass or gravel photograph with wind-like texture
motion and sensor noise, a burned-in timestamp bar, in the codecs trail cameras write; in some, a
cat (skimage's "chelsea" photo) walks in. MegadetectorLite finds the cat (scores about 0.6-0.8)
and nothing in the empty scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np

from kifaru.exceptions import KifaruError

HEIGHT, WIDTH = 360, 640
BAR_ROWS = 24  # the timestamp bar trail cameras burn in at the bottom


@dataclass(frozen=True)
class Sample:
    name: str
    background: str  # skimage photo: "grass" or "gravel"
    codec: str  # "libx264", "mjpeg" or "jpeg" (a still photo)
    cat_from: Optional[float]  # second the cat starts walking in; None: an empty scene
    cat_width: int = 180


SAMPLES = (
    Sample("cat_walks_in_h264.mp4", "grass", "libx264", cat_from=2.0),
    Sample("cat_on_gravel_trailcam.AVI", "gravel", "mjpeg", cat_from=0.0, cat_width=220),
    Sample("empty_grass_wind_h264.mp4", "grass", "libx264", cat_from=None),
    Sample("cat_on_grass_photo.jpg", "grass", "jpeg", cat_from=0.0),
)

_TINTS = {"grass": (0.75, 0.95, 0.55), "gravel": (0.9, 0.85, 0.75)}


def _skimage_data():
    try:
        from skimage import data
    except ImportError:
        raise KifaruError("making sample clips needs scikit-image: pip install 'kifaru[samples]'") from None
    return data


def _scene(background: str) -> np.ndarray:
    """A colour scene a bit larger than the frame (room for the wind to move it)."""
    grey = getattr(_skimage_data(), background)().astype(np.float32)
    grey = cv2.resize(grey, (WIDTH + 160, HEIGHT + 90), interpolation=cv2.INTER_CUBIC)
    return np.clip(grey[..., None] * np.array(_TINTS[background]), 0, 255).astype(np.uint8)


def _cat(width: int) -> np.ndarray:
    cat = _skimage_data().chelsea()
    height = round(width * cat.shape[0] / cat.shape[1])
    return cv2.resize(cat, (width, height), interpolation=cv2.INTER_AREA)


def render_frame(sample: Sample, seconds: float, scene: np.ndarray, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sample's frame at a given time: swaying scene, the cat once it has arrived, noise, bar."""
    sway_x = int(80 + 12 * np.sin(seconds * 2.1))
    sway_y = int(45 + 4 * np.sin(seconds * 3.3))
    frame = scene[sway_y : sway_y + HEIGHT, sway_x : sway_x + WIDTH].copy()
    if sample.cat_from is not None and seconds >= sample.cat_from:
        # Walks in from the left edge at ~120 px/s, then stays near the middle.
        x = min(-cat.shape[1] + int((seconds - sample.cat_from) * 120 + cat.shape[1] * 0.4), 240)
        y = HEIGHT - BAR_ROWS - cat.shape[0] - 20
        left, right = max(x, 0), min(x + cat.shape[1], WIDTH)
        if right > left:
            frame[y : y + cat.shape[0], left:right] = cat[:, left - x : right - x]
    noisy = frame.astype(np.int16) + rng.normal(0, 3, frame.shape).astype(np.int16)
    noisy[-BAR_ROWS:] = 0
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _write_clip(path: Path, sample: Sample, seconds: float, fps: int) -> None:
    scene, cat, rng = _scene(sample.background), _cat(sample.cat_width), np.random.default_rng(7)
    if sample.codec == "jpeg":
        from PIL import Image

        Image.fromarray(render_frame(sample, 1.0, scene, cat, rng)).save(path, format="JPEG", quality=90)
        return
    with av.open(str(path), "w", format="avi" if sample.codec == "mjpeg" else "mp4") as container:
        stream = container.add_stream(sample.codec, rate=fps)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuvj420p" if sample.codec == "mjpeg" else "yuv420p"
        if sample.codec == "mjpeg":
            stream.codec_context.qscale = 3
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(render_frame(sample, i / fps, scene, cat, rng), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_samples(folder: str | Path, seconds: float = 6.0, fps: int = 15) -> list[Path]:
    """Write the sample clips (and a photo) into ``folder`` (kept if already there)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in SAMPLES:
        path = folder / sample.name
        if not path.exists():
            partial = path.with_name(f".partial-{sample.name}")
            _write_clip(partial, sample, seconds, fps)
            partial.replace(path)
        paths.append(path)
    return paths
