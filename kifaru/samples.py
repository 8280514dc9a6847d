"""Sample camera-trap-like clips made from real photographs that scikit-image ships.

A fresh machine has no camera-trap footage; these clips let the README's first command run
end to end. They are built from skimage's photographs (a cat, for instance) with a slow camera
drift and sensor noise, in the codecs trail cameras write.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from kifaru.exceptions import KifaruError

# (file name, skimage photo, codec, pixel format)
SAMPLES = (
    ("cat_h264.mp4", "chelsea", "libx264", "yuv420p"),
    ("cat_trailcam_mjpeg.AVI", "chelsea", "mjpeg", "yuvj420p"),
    ("coffee_blank_h264.mp4", "coffee", "libx264", "yuv420p"),
)


def _photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        raise KifaruError(
            "making sample clips needs scikit-image: pip install 'kifaru[samples]'"
        ) from None
    return getattr(data, name)()


def _write_clip(path: Path, photo: np.ndarray, codec: str, pix_fmt: str, seconds: float, fps: int) -> None:
    height, width = 360, 640
    rng = np.random.default_rng(7)
    scene = cv2.resize(photo, (int(width * 1.25), int(height * 1.25)), interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "mjpeg":
            stream.codec_context.qscale = 3
        frames = int(seconds * fps)
        for i in range(frames):
            # A slow drift across the scene, as a camera on a swaying tree would see it.
            x = int((scene.shape[1] - width) * i / max(frames - 1, 1))
            y = int((scene.shape[0] - height) / 2)
            view = scene[y : y + height, x : x + width].astype(np.int16)
            view += rng.normal(0, 3, view.shape).astype(np.int16)
            # A black timestamp bar at the bottom, like most trail cameras burn in.
            view[-30:] = 0
            frame = av.VideoFrame.from_ndarray(np.clip(view, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_samples(folder: str | Path, seconds: float = 4.0, fps: int = 15) -> list[Path]:
    """Write the sample clips into ``folder`` (kept if already there) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, photo, codec, pix_fmt in SAMPLES:
        path = folder / name
        if not path.exists():
            partial = path.with_name(f".partial-{name}")
            _write_clip(partial, _photo(photo), codec, pix_fmt, seconds, fps)
            partial.replace(path)
        paths.append(path)
    return paths
