"""Make realistic trail-camera benchmark clips, encoded in-process with PyAV.

Three clips are written to OUT_DIR, each ``--seconds`` long (default 15 s) at 30 fps:

* ``trailcam_720p_h264.mp4``   1280x720,  H.264 (libx264, yuv420p, CRF 23) in MP4
* ``trailcam_1080p_h264.mp4``  1920x1080, H.264 likewise
* ``trailcam_720p_mjpeg.avi``  1280x720,  Motion-JPEG (yuvj420p, qscale 4) in AVI

The frames come from a real camera-trap clip (by default the 320x180 chimps-at-a-pool
clip in ``../shared/data/real-videos``), upscaled with bicubic interpolation to the
target size, plus mild per-frame (near-Gaussian, sigma 2) sensor noise so the encoder sees
realistic texture rather than a smooth upscale. When that clip is absent (a fresh
clone has no ``../shared``) a synthetic scene is used instead: the scikit-image cat
walking across a static textured "forest floor" background, with the same noise.

Everything is deterministic: the noise has a fixed seed per clip and the encoders are
configured explicitly, so the same inputs give the same (or nearly the same) bytes.
Frames are streamed (decode one, encode one), so memory stays low even at 1080p.

Clips that already exist with the expected frame count, resolution and codec are
skipped ("exists"). Each clip is written under a temporary name and renamed only
after it decoded back correctly, so an interrupted run never leaves a clip that
looks finished.

Usage::

    python benchmarks/make_trailcam_clips.py OUT_DIR [--seconds 15] [--source PATH]
    python benchmarks/make_trailcam_clips.py OUT_DIR --check      # only print info
    python benchmarks/make_trailcam_clips.py OUT_DIR --synthetic  # force the fallback scene
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

FRAME_RATE = 30
DEFAULT_SECONDS = 15.0
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "real-videos" / "chimps_pool_320x180_30fps_15s.mp4"

# Sensor noise, independent per pixel, channel and frame: Binomial(16, 1/2) - 8, i.e. the
# number of set bits in 16 random bits minus 8. That is a close approximation of a
# Gaussian with sigma exactly 2 (8-bit code values, clipped at +-4 sigma), and 2-3x
# cheaper to draw than numpy's float normals (~30 ms per 1080p frame on one core).
NOISE_SEED = 20240611
_ALL_16_BIT_VALUES = np.arange(1 << 16, dtype=">u2").view(np.uint8)
SET_BITS_MINUS_8 = (np.unpackbits(_ALL_16_BIT_VALUES).reshape(-1, 16).sum(axis=1) - 8).astype(np.int16)

# Keyframe interval. Trail and security cameras encode with the SoC's hardware H.264
# encoder (Novatek / Ambarella / HiSilicon class chips), which uses a fixed GOP of
# about one to two seconds (I-frame interval = frame rate, or twice it), no scene-cut
# keyframes and no B-frames (IP-only streams). We use a fixed 30-frame GOP (one
# keyframe per second at 30 fps, 15 keyframes in a 15 s clip) without B-frames.
H264_GOP_FRAMES = 30
H264_CRF = 23
# Trail cameras that write AVI use Motion-JPEG at a fairly high JPEG quality; an
# ffmpeg qscale of 4 (range 2 best .. 31 worst) is in that range.
MJPEG_QSCALE = 4

# Decoded frames must match the (noise-free) upscaled source to within this mean
# absolute difference in 8-bit RGB values (the sensor noise alone contributes ~1.6; an
# off-by-one frame of the real source already gives ~4.4).
MAX_MEAN_ABS_DIFF = 4.0


@dataclass(frozen=True)
class ClipSpec:
    """How one benchmark clip is encoded."""

    filename: str
    width: int
    height: int
    encoder: str  # PyAV/FFmpeg encoder name
    codec: str  # codec name as the decoder reports it
    container_format: str
    pix_fmt: str
    encoder_options: dict[str, str] = field(default_factory=dict)
    mjpeg_qscale: int | None = None


H264_OPTIONS = {
    "crf": str(H264_CRF),
    "preset": "medium",
    "x264-params": f"keyint={H264_GOP_FRAMES}:min-keyint={H264_GOP_FRAMES}:scenecut=0:bframes=0",
}

CLIP_SPECS: tuple[ClipSpec, ...] = (
    ClipSpec("trailcam_720p_h264.mp4", 1280, 720, "libx264", "h264", "mp4", "yuv420p", H264_OPTIONS),
    ClipSpec("trailcam_1080p_h264.mp4", 1920, 1080, "libx264", "h264", "mp4", "yuv420p", H264_OPTIONS),
    ClipSpec("trailcam_720p_mjpeg.avi", 1280, 720, "mjpeg", "mjpeg", "avi", "yuvj420p", mjpeg_qscale=MJPEG_QSCALE),
)


@dataclass(frozen=True)
class ClipInfo:
    """What demuxing an existing clip tells us."""

    path: Path
    size_bytes: int
    frame_count: int
    keyframe_count: int
    width: int
    height: int
    codec: str
    frame_rate: Fraction

    @property
    def duration_s(self) -> float:
        return float(self.frame_count / self.frame_rate) if self.frame_rate else 0.0

    def describe(self) -> str:
        megabytes = self.size_bytes / 1e6
        mbit_per_s = self.size_bytes * 8 / 1e6 / self.duration_s if self.duration_s else 0.0
        return (
            f"{self.path}: {megabytes:.2f} MB, {self.frame_count} frames, {self.width}x{self.height}, "
            f"{self.codec}, {self.keyframe_count} keyframes, {self.duration_s:.2f} s, {mbit_per_s:.1f} Mbit/s"
        )


# --------------------------------------------------------------------------- frames


def iter_source_video_frames(source_path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Yield the source clip's frames as RGB uint8, bicubically resized to width x height.

    The source is looped if it is shorter than the clip being made.
    """
    while True:
        frames_this_pass = 0
        with av.open(str(source_path)) as container:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                if rgb.shape[:2] != (height, width):
                    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
                frames_this_pass += 1
                yield rgb
        if frames_this_pass == 0:
            raise ValueError(f"no video frames decoded from {source_path}")


def make_textured_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A static, deterministic 'forest floor' texture: multi-octave value noise in greens and browns."""
    detail = np.zeros((height, width), np.float32)
    for cell_pixels, weight in ((320, 0.35), (96, 0.25), (24, 0.2), (6, 0.12), (2, 0.08)):
        coarse = rng.random((max(2, height // cell_pixels), max(2, width // cell_pixels)), dtype=np.float32)
        detail += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    low, high = np.percentile(detail, (1, 99))
    detail = np.clip((detail - low) / (high - low), 0.0, 1.0)[..., None]
    leaf_green = np.array([58, 92, 40], np.float32)
    soil_brown = np.array([120, 96, 64], np.float32)
    background = soil_brown * (1.0 - detail) + leaf_green * detail
    background *= 0.55 + 0.9 * detail  # darker shadows, brighter highlights
    return np.clip(background, 0, 255).astype(np.uint8)


def iter_synthetic_frames(width: int, height: int) -> Iterator[np.ndarray]:
    """Yield an endless synthetic trail-camera scene: the skimage cat walking across a static background."""
    from skimage import data as skimage_data  # only needed for the fallback scene

    rng = np.random.default_rng(NOISE_SEED + 1)
    background = make_textured_background(width, height, rng)

    cat = skimage_data.chelsea()  # 300x451 RGB
    sprite_height = int(height * 0.45)
    sprite_width = int(cat.shape[1] * sprite_height / cat.shape[0])
    sprite = cv2.resize(cat, (sprite_width, sprite_height), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Feathered elliptical mask so the animal is not a hard-edged rectangle.
    yy, xx = np.mgrid[0:sprite_height, 0:sprite_width].astype(np.float32)
    half_width, half_height = sprite_width / 2, sprite_height / 2
    ellipse = ((xx - half_width) / half_width) ** 2 + ((yy - half_height) / half_height) ** 2
    alpha = np.clip((1.0 - ellipse) / 0.25, 0.0, 1.0)[..., None]

    crossing_frames = 10 * FRAME_RATE  # the cat crosses the frame in 10 s, then comes round again
    travel = width + sprite_width
    frame_index = 0
    while True:
        phase = (frame_index % crossing_frames) / crossing_frames
        left = int(round(phase * travel)) - sprite_width
        top = int(height * 0.45 + 0.04 * height * np.sin(2 * np.pi * 6 * phase))  # gait bob
        # Slow global illumination drift, as from passing clouds.
        gain = 1.0 + 0.05 * np.sin(2 * np.pi * frame_index / (7 * FRAME_RATE))
        frame = cv2.convertScaleAbs(background, alpha=gain)  # uint8, saturating

        x0, x1 = max(left, 0), min(left + sprite_width, width)
        y0, y1 = max(top, 0), min(top + sprite_height, height)
        if x1 > x0 and y1 > y0:
            sx0, sy0 = x0 - left, y0 - top
            sprite_part = sprite[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)]
            alpha_part = alpha[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)]
            region = frame[y0:y1, x0:x1].astype(np.float32)
            blended = region * (1.0 - alpha_part) + sprite_part * alpha_part
            frame[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        yield frame
        frame_index += 1


def iter_scene_frames(source_path: Path | None, width: int, height: int) -> Iterator[np.ndarray]:
    """Noise-free frames at the target size: the upscaled source clip, or the synthetic scene if None."""
    if source_path is None:
        return iter_synthetic_frames(width, height)
    return iter_source_video_frames(source_path, width, height)


def add_sensor_noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean, sigma-2 sensor noise to an RGB uint8 frame, returning uint8."""
    random_bits = np.frombuffer(rng.bytes(frame.size * 2), dtype=np.uint16).reshape(frame.shape)
    noisy = SET_BITS_MINUS_8[random_bits]  # int16
    noisy += frame
    np.clip(noisy, 0, 255, out=noisy)
    return noisy.astype(np.uint8)


# --------------------------------------------------------------------------- encode / inspect


def encode_clip(spec: ClipSpec, output_path: Path, source_path: Path | None, frame_count: int) -> None:
    """Encode frame_count noisy scene frames to output_path, one frame at a time."""
    noise_rng = np.random.default_rng(NOISE_SEED)  # per clip, so output does not depend on skipped clips
    time_base = Fraction(1, FRAME_RATE)
    with av.open(str(output_path), mode="w", format=spec.container_format) as container:
        stream = container.add_stream(spec.encoder, rate=FRAME_RATE, options=dict(spec.encoder_options))
        stream.width = spec.width
        stream.height = spec.height
        stream.pix_fmt = spec.pix_fmt
        stream.time_base = time_base
        codec_context = stream.codec_context
        if spec.encoder == "libx264":
            codec_context.gop_size = H264_GOP_FRAMES
            codec_context.max_b_frames = 0
        if spec.mjpeg_qscale is not None:
            # Equivalent of `ffmpeg -q:v N` for MJPEG: pin the quantiser. (Setting the
            # QSCALE flag + global_quality has no effect through PyAV, because FFmpeg reads
            # the per-frame quality that only the ffmpeg CLI fills in.)
            codec_context.qmin = spec.mjpeg_qscale
            codec_context.qmax = spec.mjpeg_qscale

        scene_frames = iter_scene_frames(source_path, spec.width, spec.height)
        for frame_index in range(frame_count):
            rgb = add_sensor_noise(next(scene_frames), noise_rng)
            video_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            video_frame.pts = frame_index
            video_frame.time_base = time_base
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))  # flush delayed frames
        scene_frames.close()


def read_clip_info(path: Path) -> ClipInfo:
    """Demux (without decoding) the first video stream and count its packets and keyframe packets."""
    frame_count = keyframe_count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet demux() yields at the end
                continue
            frame_count += 1
            keyframe_count += int(packet.is_keyframe)
        return ClipInfo(
            path=path,
            size_bytes=path.stat().st_size,
            frame_count=frame_count,
            keyframe_count=keyframe_count,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
            frame_rate=Fraction(stream.average_rate or stream.guessed_rate or 0),
        )


def is_complete(info: ClipInfo, spec: ClipSpec, frame_count: int) -> bool:
    return (
        info.frame_count == frame_count
        and (info.width, info.height) == (spec.width, spec.height)
        and info.codec == spec.codec
    )


def verify_decodes_like_source(path: Path, spec: ClipSpec, source_path: Path | None, frame_count: int) -> list[float]:
    """Decode the clip back with PyAV; check its frame count and that sampled frames match the source.

    Returns the mean absolute RGB difference at the sampled frame indices.
    """
    sample_indices = sorted({0, frame_count // 3, (2 * frame_count) // 3, frame_count - 1})
    mean_abs_diffs: list[float] = []
    decoded_count = 0
    scene_frames = iter_scene_frames(source_path, spec.width, spec.height)
    with av.open(str(path)) as container:
        for decoded_frame, scene_frame in zip(container.decode(video=0), scene_frames):
            if decoded_count in sample_indices:
                decoded_rgb = decoded_frame.to_ndarray(format="rgb24")
                diff = np.abs(decoded_rgb.astype(np.int16) - scene_frame.astype(np.int16))
                mean_abs_diffs.append(float(diff.mean()))
            decoded_count += 1
    scene_frames.close()
    if decoded_count != frame_count:
        raise RuntimeError(f"{path}: decoded {decoded_count} frames, expected {frame_count}")
    if max(mean_abs_diffs) > MAX_MEAN_ABS_DIFF:
        raise RuntimeError(f"{path}: decoded frames differ from the source, mean abs diff {mean_abs_diffs}")
    return mean_abs_diffs


def make_clip(spec: ClipSpec, out_dir: Path, source_path: Path | None, frame_count: int) -> None:
    """Create one clip unless a complete one already exists, and print its info."""
    final_path = out_dir / spec.filename
    if final_path.exists():
        info = read_clip_info(final_path)
        if is_complete(info, spec, frame_count):
            print(f"exists  {info.describe()}")
            return
        print(f"redo    {final_path}: has {info.frame_count} frames {info.width}x{info.height} {info.codec}")

    partial_path = out_dir / f".{spec.filename}.partial"
    started = time.perf_counter()
    try:
        encode_clip(spec, partial_path, source_path, frame_count)
        encode_seconds = time.perf_counter() - started
        mean_abs_diffs = verify_decodes_like_source(partial_path, spec, source_path, frame_count)
        partial_path.replace(final_path)
    finally:
        partial_path.unlink(missing_ok=True)
    info = read_clip_info(final_path)
    diffs_text = ", ".join(f"{d:.2f}" for d in mean_abs_diffs)
    print(f"wrote   {info.describe()}")
    print(f"        encoded in {encode_seconds:.1f} s; decode-back mean abs diff vs source: {diffs_text}")


def print_existing_clips(out_dir: Path) -> int:
    """Print info for the clips already in out_dir; return 1 if any is missing."""
    exit_code = 0
    for spec in CLIP_SPECS:
        path = out_dir / spec.filename
        if path.exists():
            print(read_clip_info(path).describe())
        else:
            print(f"missing {path}")
            exit_code = 1
    return exit_code


def resolve_source(source_arg: Path | None, force_synthetic: bool) -> Path | None:
    """The source clip to upscale, or None for the synthetic scene."""
    if force_synthetic:
        return None
    if source_arg is not None:
        if not source_arg.is_file():
            raise SystemExit(f"--source {source_arg} does not exist")
        return source_arg
    return DEFAULT_SOURCE if DEFAULT_SOURCE.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the clips into (created if needed)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="clip length (default 15)")
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help=f"real clip to upscale (default {DEFAULT_SOURCE}; synthetic scene if that is absent)",
    )
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic scene even if a source exists")
    parser.add_argument("--check", action="store_true", help="only print info for the clips already in OUT_DIR")
    args = parser.parse_args(argv)

    if args.check:
        return print_existing_clips(args.out_dir)

    frame_count = round(args.seconds * FRAME_RATE)
    if frame_count < 1:
        parser.error("--seconds must give at least one frame")
    source_path = resolve_source(args.source, args.synthetic)
    print(f"source: {source_path if source_path else 'synthetic scene (skimage chelsea on textured background)'}")
    print(f"frames per clip: {frame_count} ({args.seconds:g} s at {FRAME_RATE} fps)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for spec in CLIP_SPECS:
        make_clip(spec, args.out_dir, source_path, frame_count)
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
