"""Tiny media made on the fly for tests: clips whose frames show their own index.

Each frame carries its index as 8 vertical stripes (bit k of the index: stripe k white or black),
drawn over the full height, so the index survives lossy codecs, bottom crops and resizes. The
bottom ``BAND_ROWS`` rows are a solid blue bar (a stand-in for a camera's timestamp bar).
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Optional, Sequence

import av
import numpy as np

BITS = 8
BAND_ROWS = 8
BAND_COLOUR = (0, 0, 255)


def index_frame(index: int, height: int = 64, width: int = 96, band: bool = True) -> np.ndarray:
    """An RGB frame whose stripes spell ``index`` (0-255)."""
    frame = np.zeros((height, width, 3), np.uint8)
    stripe = width // BITS
    for bit in range(BITS):
        if (index >> bit) & 1:
            frame[:, bit * stripe : (bit + 1) * stripe] = 255
    # A coloured corner makes orientation and channel order visible (red top-left, green top-right).
    frame[:8, :8] = (255, 0, 0)
    frame[:8, -8:] = (0, 255, 0)
    if band:
        frame[-BAND_ROWS:] = BAND_COLOUR
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index a frame shows (read from the middle rows of each stripe)."""
    height, width = frame.shape[:2]
    middle = frame[height // 3 : height // 2].astype(np.float32).mean(axis=(0, 2))
    stripe = width / BITS
    value = 0
    for bit in range(BITS):
        centre = middle[int(bit * stripe + stripe * 0.3) : int(bit * stripe + stripe * 0.7)]
        if centre.mean() > 128:
            value |= 1 << bit
    return value


def read_indices(frames: np.ndarray) -> list[int]:
    return [read_index(frame) for frame in frames]


def make_clip(
    path: Path,
    n_frames: int = 30,
    fps: int = 10,
    codec: str = "libx264",
    size: tuple[int, int] = (64, 96),
    gop: Optional[int] = None,
    times: Optional[Sequence[float]] = None,
    rotation: int = 0,
    pix_fmt: Optional[str] = None,
    options: Optional[dict[str, str]] = None,
    frames: Optional[Sequence[np.ndarray]] = None,
    metadata: Optional[dict[str, str]] = None,
) -> Path:
    """Encode a clip of index frames (or the given ``frames``); ``metadata``: the container's
    (e.g. ``creation_time``, as cameras write it).

    ``times`` gives each frame's presentation time in seconds for variable-frame-rate clips;
    ``gop`` the keyframe interval; ``rotation`` a display rotation (degrees counter-clockwise).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    with av.open(str(path), "w") as container:
        container.metadata.update(metadata or {})
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if gop is not None:
            stream.codec_context.gop_size = gop
        opts = dict(options or {})
        if codec == "libx264":
            opts.setdefault("preset", "ultrafast")
            if gop is not None:
                opts.setdefault("x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0")
        if codec == "mjpeg":
            stream.codec_context.qscale = 2
        if opts:
            stream.options = opts
        if rotation:
            stream.set_display_rotation(rotation)
        time_base = Fraction(1, 1000) if times is not None else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        source = frames if frames is not None else [index_frame(i, height, width) for i in range(n_frames)]

        def video_frames():
            for i, rgb in enumerate(source):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = round(times[i] * 1000) if times is not None else i
                frame.time_base = time_base
                yield frame

        _encode_all(container, stream, video_frames())
    return path


def _encode_all(container, stream, frames) -> None:
    """Encode and mux every frame, then flush the encoder."""
    for frame in frames:
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """A file with one audio stream and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        tone = (np.sin(np.arange(samples) / 10) * 0.3).astype(np.float32)[None, :]

        def audio_frames():
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate = 16000
                frame.pts = start
                yield frame

        _encode_all(container, stream, audio_frames())
    return path


def make_clip_with_audio(path: Path, n_frames: int = 20, fps: int = 10, video_start: float = 0.0) -> Path:
    """A clip whose first stream is audio (from 0 s) and whose video starts at ``video_start``."""
    with av.open(str(path), "w") as container:
        audio = container.add_stream("mp2", rate=16000)
        audio.layout = "mono"
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        video.options = {"preset": "ultrafast"}
        video.codec_context.time_base = Fraction(1, fps)
        offset = round(video_start * fps)
        packets = []
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i), format="rgb24")
            frame.pts, frame.time_base = i + offset, Fraction(1, fps)
            packets += video.encode(frame)
        packets += video.encode()
        samples = int(16000 * (n_frames / fps + video_start))
        tone = (np.sin(np.arange(samples) / 10) * 0.3).astype(np.float32)
        for start in range(0, samples - 1152, 1152):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1152], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            packets += audio.encode(frame)
        packets += audio.encode()
        for packet in sorted(packets, key=lambda p: float(p.dts * p.time_base)):
            container.mux(packet)
    return path


def animal_picture(height: int = 288, width: int = 448, shift: int = 0) -> np.ndarray:
    """An RGB photo of an animal (scikit-image's cat, Chelsea), cropped to ``height`` x ``width``
    from ``shift`` pixels in: the real MegadetectorLite scores it about 0.5."""
    from skimage import data

    cat = data.chelsea()  # 300 x 451
    return np.ascontiguousarray(cat[:height, shift : shift + width])


def make_animal_clip(path: Path, animal_at: Sequence[int], n_frames: int = 12, fps: int = 4, size: tuple[int, int] = (288, 448)) -> Path:
    """A clip of index frames (no animal: the detector finds nothing) with the animal photo at the
    frames ``animal_at`` (each shifted a little, so that no two frames are the same)."""
    height, width = size
    frames = [animal_picture(height, width, shift=i % 4) if i in animal_at else index_frame(i, height, width) for i in range(n_frames)]
    return make_clip(path, fps=fps, size=size, frames=frames)


def write_filepaths(path: Path, files: Sequence[object], column: str = "filepath", extra: Optional[Mapping[str, str]] = None) -> Path:
    """A list of files as ``--filepaths`` takes it: one ``column``, plus ``extra`` columns with the
    same value on every row (a user's list often carries more than the paths)."""
    extra = dict(extra or {})
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([column, *extra])
        writer.writerows([str(f), *extra.values()] for f in files)
    return Path(path)
