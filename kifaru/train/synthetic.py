"""A labelled set of made-up clips whose classes look different: for trying training quickly,
for tests, and for the training benchmark.

Each class is a shape of its own colour (a red square, a blue disc, a green bar, ...) moving
across a noisy grey background along a random path; ``noise`` and the random backgrounds make
the task less trivial than one pixel's colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

CLASSES = ("red_square", "blue_disc", "green_bar", "yellow_cross", "magenta_ring")
_COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220), "green": (40, 200, 60), "yellow": (230, 220, 40), "magenta": (210, 50, 200)}


def _shape_mask(kind: str, height: int, width: int, cy: float, cx: float, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    dy, dx = y - cy, x - cx
    if kind == "square":
        return (np.abs(dy) < radius) & (np.abs(dx) < radius)
    if kind == "disc":
        return dy**2 + dx**2 < radius**2
    if kind == "bar":
        return (np.abs(dy) < radius / 3) & (np.abs(dx) < radius * 1.5)
    if kind == "cross":
        return ((np.abs(dy) < radius / 4) & (np.abs(dx) < radius)) | ((np.abs(dx) < radius / 4) & (np.abs(dy) < radius))
    if kind == "ring":
        distance = np.sqrt(dy**2 + dx**2)
        return (distance < radius) & (distance > radius * 0.55)
    raise ValueError(f"unknown shape {kind}")


def clip_frames(label: str, rng: np.random.Generator, n_frames: int = 16, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """(n_frames, H, W, 3) uint8 frames of ``label`` (one of CLASSES) moving over noise."""
    colour_name, kind = label.split("_")
    height, width = size
    background = rng.integers(60, 160, size=3)
    start = rng.uniform([0.2 * height, 0.1 * width], [0.8 * height, 0.4 * width])
    velocity = rng.uniform([-0.02 * height, 0.02 * width], [0.02 * height, 0.05 * width])
    radius = rng.uniform(0.1, 0.18) * min(height, width)
    colour = np.array(_COLOURS[colour_name]) + rng.integers(-20, 21, size=3)
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for t in range(n_frames):
        frame = background + rng.normal(0, 12, size=(height, width, 3))
        cy, cx = start + velocity * t
        frame[_shape_mask(kind, height, width, cy, cx, radius)] = colour
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_training_set(
    folder: Path, clips_per_class: int = 12, classes: Sequence[str] = CLASSES[:3], seed: int = 0, n_frames: int = 16, fps: int = 4
) -> Path:
    """Encode ``clips_per_class`` H.264 clips per class into ``folder`` and write
    ``folder/labels.csv`` (filepath relative to ``folder``, label); returns the CSV's path."""
    import av

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["filepath,label"]
    for label in classes:
        for i in range(clips_per_class):
            name = f"{label}_{i:03d}.mp4"
            frames = clip_frames(label, rng, n_frames)
            with av.open(str(folder / name), "w") as container:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = frames.shape[1:3]
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "ultrafast", "crf": "18"}
                for rgb in frames:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            rows.append(f"{name},{label}")
    labels = folder / "labels.csv"
    labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return labels
