"""Make a benchmark card that looks like a real one off a trail camera: mostly empty clips.

``python benchmarks/make_card.py OUT_DIR [--clips 100] [--animal-share 0.3] [--jobs 2]``

writes ``OUT_DIR/clips/`` and ``OUT_DIR/card.csv`` (one row per clip: what it was made of, and for
an animal clip when the animal is in view). Everything comes from the real media in
``../shared/data`` (the benchmark cannot run without them):

* **Empty clips** (about 70%): a real scene without an animal, in which things move as they do
  on a windy day. The scenes are the backgrounds of the real photos (each ENA24 photo with the
  part where the detector finds its animal left out: the largest 16:9 window clear of every box)
  and of the real clips (the median of their frames, which leaves out animals that move). Each
  scene is kept only where MegadetectorLite finds nothing in it at 0.1, so that an empty clip is
  empty as the detector sees it. On it: wind (a smooth displacement field swaying a few pixels,
  stronger in some parts than others), light (the exposure drifting, sometimes a soft cloud
  shadow passing or an auto-exposure step), sensor noise; a quarter are night (infrared,
  grey, noisier).
* **Animal clips** (about 30%): half are stretches of the real animal clips (chimpanzees at a
  pool, chimpanzees in a forest), upscaled, looped back and forth to the clip's length; half are
  the animal of a real photo (its detector box and a margin, feathered) walking into a real
  empty scene some time after the clip starts and out again, over the same wind and noise.

Clips are 10-30 s at 30 fps (whole seconds), in the formats cameras write: 1280x720 H.264 in MP4
(40%), 1920x1080 H.264 in MP4 (30%), 1280x720 Motion-JPEG in AVI (30%). H.264 as camera chips
encode it: a keyframe every second, no B-frames. Each clip's content comes from its own seed:
the same command makes the same card. A clip is written under a temporary name and renamed once
it reads back with every frame; a rerun skips the clips already made.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator, Optional

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from make_trailcam_clips import H264_GOP_FRAMES, H264_OPTIONS, MJPEG_QSCALE, SET_BITS_MINUS_8, read_clip_info  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data"
REAL_CLIPS = [SHARED / "real-videos" / "chimps_pool_320x180_30fps_15s.mp4", SHARED / "real-videos" / "chimp_forest_720x404_4fps_30s.mp4"]
PHOTOS_DIR = SHARED / "zamba-test-assets" / "images"
FRAME_RATE = 30
SECONDS = (10, 30)
# (name, width, height, encoder, container, pixel format, share of the card)
FORMATS = (
    ("720p_h264", 1280, 720, "libx264", "mp4", "yuv420p", 0.4),
    ("1080p_h264", 1920, 1080, "libx264", "mp4", "yuv420p", 0.3),
    ("720p_mjpeg", 1280, 720, "mjpeg", "avi", "yuvj420p", 0.3),
)
# The card is made once: x264's "veryfast" keeps its making quick; the stream is still what a
# camera's encoder writes (a keyframe a second, no B-frames), which is what decoding costs.
CARD_H264_OPTIONS = {**H264_OPTIONS, "preset": "veryfast"}
EMPTY_AT = 0.1  # a scene is empty where the detector's best box scores below this
ANIMAL_BOX_AT = 0.5  # a photo's animal: its best box, if it scores at least this
NOISE_BANK = 31  # sensor-noise frames drawn per clip, cycled and shifted (drawing each costs more than encoding it)


@dataclass(frozen=True)
class Scene:
    """An empty real scene: where it came from, and the file of its pixels (PNG, RGB)."""

    name: str
    image: str


@dataclass(frozen=True)
class Sprite:
    """A real photo's animal: the photo and the box (pixels, x1 y1 x2 y2) cut out of it."""

    name: str
    photo: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class ClipPlan:
    """Everything one clip is made from; its own seed makes the rest."""

    file: str
    content: str  # "empty" or "animal"
    made_from: str  # "scene:...", "clip:...", "photo:... on scene:..."
    seconds: int
    format: str
    seed: int
    night: bool
    animal_from_s: Optional[float] = None  # for a photo's animal: when it is in view
    animal_to_s: Optional[float] = None


# --------------------------------------------------------------------------- the real media


def detector():
    from kifaru.detection.megadetector_lite import load_megadetector_lite

    return load_megadetector_lite(device="cpu")


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def photos() -> list[Path]:
    found = sorted(p for p in PHOTOS_DIR.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".webp", ".png"))
    return found + [SHARED / "zamba-test-assets" / "dog.jpg"]


def clear_window(width: int, height: int, boxes: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """The largest 16:9 window (x1, y1, x2, y2) of a width x height photo that no box (relative
    x1 y1 x2 y2) reaches into, on a grid of 1/16ths of the photo; None if none is a third wide."""
    pixels = [(int(x1 * width), int(y1 * height), math.ceil(x2 * width), math.ceil(y2 * height)) for x1, y1, x2, y2 in boxes]
    for window_width in range(width, width // 3, -max(1, width // 32)):
        window_height = round(window_width * 9 / 16)
        if window_height > height:
            continue
        for top in range(0, height - window_height + 1, max(1, height // 16)):
            for left in range(0, width - window_width + 1, max(1, width // 16)):
                window = (left, top, left + window_width, top + window_height)
                if not any(x1 < window[2] and window[0] < x2 and y1 < window[3] and window[1] < y2 for x1, y1, x2, y2 in pixels):
                    return window
    return None


def median_background(clip: Path, samples: int = 60) -> np.ndarray:
    """The per-pixel median of ``samples`` frames spread over a clip: what stays still."""
    with av.open(str(clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    picked = np.linspace(0, len(frames) - 1, min(samples, len(frames))).round().astype(int)
    return np.median(np.stack([frames[i] for i in picked]), axis=0).astype(np.uint8)


def find_scenes_and_sprites(work: Path) -> tuple[list[Scene], list[Sprite], list[str]]:
    """The empty scenes and the animals the real media give, and why each one left out was."""
    md = detector()
    scenes, sprites, left_out = [], [], []
    (work / "scenes").mkdir(parents=True, exist_ok=True)

    def keep_scene(name: str, rgb: np.ndarray) -> None:
        score = md.detect([rgb], confidence=0.01)[0].score
        if score >= EMPTY_AT:
            left_out.append(f"scene:{name}: the detector finds something in it at {score:.2f}")
            return
        path = work / "scenes" / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        scenes.append(Scene(name, str(path)))

    for photo in photos():
        rgb = read_rgb(photo)
        found = md.detect([rgb], confidence=0.01)[0]
        if found.score >= ANIMAL_BOX_AT:
            height, width = rgb.shape[:2]
            x1, y1, x2, y2 = found.boxes[0]
            sprites.append(Sprite(photo.stem, str(photo), (int(x1 * width), int(y1 * height), math.ceil(x2 * width), math.ceil(y2 * height))))
        else:
            left_out.append(f"photo:{photo.name}: no animal box at {ANIMAL_BOX_AT} (best {found.score:.2f})")
        window = clear_window(rgb.shape[1], rgb.shape[0], found.above(0.05).boxes)
        if window is None:
            left_out.append(f"scene:{photo.stem}: no 16:9 window a third of the photo wide clear of its boxes")
        else:
            x1, y1, x2, y2 = window
            keep_scene(photo.stem, np.ascontiguousarray(rgb[y1:y2, x1:x2]))
    for clip in REAL_CLIPS:
        keep_scene(f"{clip.stem}_median", median_background(clip))
    return scenes, sprites, left_out


# --------------------------------------------------------------------------- the plan


def plan_card(count: int, animal_share: float, scenes: list[Scene], sprites: list[Sprite], seed: int) -> list[ClipPlan]:
    rng = np.random.default_rng(seed)
    animals = round(count * animal_share)
    contents = ["animal"] * animals + ["empty"] * (count - animals)
    rng.shuffle(contents)
    formats = [name for name, *_, share in FORMATS for _ in range(round(share * count))]
    formats = (formats + [FORMATS[0][0]] * count)[:count]
    rng.shuffle(formats)
    plans = []
    for index, (content, fmt) in enumerate(zip(contents, formats)):
        seconds = int(rng.integers(SECONDS[0], SECONDS[1] + 1))
        scene = scenes[int(rng.integers(len(scenes)))]
        night = content == "empty" and rng.random() < 0.25
        extension = next(f[4] for f in FORMATS if f[0] == fmt)
        plan = dict(file=f"card_{index:03d}_{fmt}.{extension}", content=content, seconds=seconds, format=fmt, seed=seed * 1000 + index, night=night)
        if content == "empty":
            plans.append(ClipPlan(made_from=f"scene:{scene.name}", **plan))
        elif rng.random() < 0.5:
            plans.append(ClipPlan(made_from=f"clip:{REAL_CLIPS[int(rng.integers(len(REAL_CLIPS)))].name}", **plan))
        else:
            sprite = sprites[int(rng.integers(len(sprites)))]
            enters = float(rng.uniform(0.0, 0.5 * seconds))
            stays = float(rng.uniform(4.0, min(12.0, seconds - enters)))
            plans.append(ClipPlan(made_from=f"photo:{sprite.name} on scene:{scene.name}", animal_from_s=round(enters, 2), animal_to_s=round(enters + stays, 2), **plan))
    return plans


# --------------------------------------------------------------------------- the frames


class Weather:
    """Wind, light and sensor noise over a width x height scene, frame by frame."""

    def __init__(self, width: int, height: int, rng: np.random.Generator, night: bool) -> None:
        self.width, self.height, self.rng, self.night = width, height, rng, night
        grid = (max(2, height // 90), max(2, width // 90))
        # Where the wind moves things (leaves, grass), how far (pixels) and in which rhythm.
        self.sway = cv2.resize(rng.random(grid, dtype=np.float32) ** 2, (width, height), interpolation=cv2.INTER_CUBIC) * float(rng.uniform(1.0, 5.0))
        self.phase = cv2.resize(rng.random(grid, dtype=np.float32) * 2 * np.pi, (width, height), interpolation=cv2.INTER_CUBIC)
        self.gust_hz = float(rng.uniform(0.25, 1.0))
        self.x, self.y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self.drift = float(rng.uniform(0.0, 0.08))  # exposure drift, relative
        self.drift_hz = float(rng.uniform(0.02, 0.1))
        self.shadow = rng.random() < 0.4
        self.shadow_speed = float(rng.uniform(0.03, 0.12)) * width  # pixels per second
        self.exposure_step_at = float(rng.uniform(3.0, 9.0)) if rng.random() < 0.3 else None
        sigma_bits = 64 if night else 16  # Binomial(n, 1/2) - n/2: sigma 4 at night, 2 by day
        self.noise = self._noise_bank(sigma_bits)

    def _noise_bank(self, bits: int) -> list[np.ndarray]:
        bank = []
        for _ in range(NOISE_BANK):
            draws = np.frombuffer(self.rng.bytes(self.height * self.width * 3 * 2), dtype=np.uint16).reshape(self.height, self.width, 3)
            noise = SET_BITS_MINUS_8[draws]
            for _ in range(bits // 16 - 1):
                draws = np.frombuffer(self.rng.bytes(draws.size * 2), dtype=np.uint16).reshape(draws.shape)
                noise = noise + SET_BITS_MINUS_8[draws]
            bank.append(noise.astype(np.int16))
        return bank

    def __call__(self, scene: np.ndarray, index: int) -> np.ndarray:
        t = index / FRAME_RATE
        amount = self.sway * (0.6 + 0.4 * math.sin(2 * np.pi * 0.07 * t))  # gusts come and go
        dx = amount * np.sin(2 * np.pi * self.gust_hz * t + self.phase)
        dy = 0.3 * amount * np.cos(2 * np.pi * self.gust_hz * 1.3 * t + self.phase)
        frame = cv2.remap(scene, self.x + dx, self.y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        gain = 1.0 + self.drift * math.sin(2 * np.pi * self.drift_hz * t)
        if self.exposure_step_at is not None and t >= self.exposure_step_at:
            gain *= 0.85
        light = np.float32(gain)
        if self.shadow:
            centre = -0.3 * self.width + self.shadow_speed * t
            across = np.clip(1.0 - np.abs(self.x[0] - centre) / (0.35 * self.width), 0.0, 1.0)
            light = light * (1.0 - 0.25 * across * across)[None, :, None]
        frame = frame.astype(np.float32) * light
        noise = np.roll(self.noise[index % NOISE_BANK], int(self.rng.integers(self.width)), axis=1)
        if self.night:  # infrared: grey, and so is its noise
            frame = frame.mean(axis=2, keepdims=True) * 0.8 + 10
            noise = noise[..., :1]
        return np.broadcast_to(np.clip(frame + noise, 0, 255).astype(np.uint8), (self.height, self.width, 3))


def fill(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """An image resized to cover width x height, the middle kept (the cut evenly on both sides)."""
    scale = max(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def real_clip_frames(clip: Path, width: int, height: int, start: int) -> Iterator[np.ndarray]:
    """A real clip's frames at 30 fps (a slower clip's frames held), covering width x height,
    from frame ``start`` on, played forwards, then backwards, and so on."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or FRAME_RATE)
        frames = [fill(frame.to_ndarray(format="rgb24"), width, height) for frame in container.decode(stream)]
    there_and_back = frames + frames[-2:0:-1]
    shown = 0
    while True:
        yield there_and_back[int(start + shown * rate / FRAME_RATE) % len(there_and_back)]
        shown += 1


def sprite_frames(plan: ClipPlan, sprite: Sprite, scene: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """A photo's animal walking across a scene between plan.animal_from_s and animal_to_s."""
    height, width = scene.shape[:2]
    photo = read_rgb(Path(sprite.photo))
    x1, y1, x2, y2 = sprite.box
    margin_x, margin_y = (x2 - x1) // 8, (y2 - y1) // 8
    x1, y1 = max(0, x1 - margin_x), max(0, y1 - margin_y)
    x2, y2 = min(photo.shape[1], x2 + margin_x), min(photo.shape[0], y2 + margin_y)
    cut = photo[y1:y2, x1:x2]
    tall = float(rng.uniform(0.25, 0.5)) * height
    scale = min(tall / cut.shape[0], 0.6 * width / cut.shape[1])
    animal = cv2.resize(cut, (max(1, round(cut.shape[1] * scale)), max(1, round(cut.shape[0] * scale))), interpolation=cv2.INTER_AREA).astype(np.float32)
    h, w = animal.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    edge = np.minimum(np.minimum(xx, w - 1 - xx) / max(1, w * 0.12), np.minimum(yy, h - 1 - yy) / max(1, h * 0.12))
    alpha = np.clip(edge, 0.0, 1.0)[..., None]
    leftwards = rng.random() < 0.5
    ground = float(rng.uniform(0.35, 0.95)) * height - h  # the animal's top, its feet on the ground
    top_base = int(np.clip(ground, 0, height - h))
    index = 0
    while True:
        t = index / FRAME_RATE
        frame = scene.copy()
        if plan.animal_from_s <= t < plan.animal_to_s:
            # From just in view at one side to just in view at the other.
            progress = (t - plan.animal_from_s) / (plan.animal_to_s - plan.animal_from_s)
            left = int(-0.5 * w + progress * (width))
            if leftwards:
                left = width - left - w
            top = int(top_base + 0.02 * height * math.sin(2 * math.pi * 1.5 * t))
            px0, px1 = max(left, 0), min(left + w, width)
            py0, py1 = max(top, 0), min(top + h, height)
            if px1 > px0 and py1 > py0:
                part = animal[py0 - top : py1 - top, px0 - left : px1 - left]
                a = alpha[py0 - top : py1 - top, px0 - left : px1 - left]
                frame[py0:py1, px0:px1] = (frame[py0:py1, px0:px1] * (1 - a) + part * a).astype(np.uint8)
        yield frame
        index += 1


def clip_frames(plan: ClipPlan, width: int, height: int, scenes: dict[str, Scene], sprites: dict[str, Sprite]) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(plan.seed)
    weather = Weather(width, height, rng, plan.night)
    kind, _, rest = plan.made_from.partition(":")
    if kind == "clip":
        clip = next(c for c in REAL_CLIPS if c.name == rest)
        source = real_clip_frames(clip, width, height, int(rng.integers(0, 120)))
        weather.sway *= 0.3  # the real clip's own leaves move already
    else:
        scene_name = rest.rsplit("scene:", 1)[-1]
        scene = fill(cv2.cvtColor(cv2.imread(scenes[scene_name].image), cv2.COLOR_BGR2RGB), width, height)
        source = sprite_frames(plan, sprites[rest.split(" on ")[0]], scene, rng) if kind == "photo" else itertools.repeat(scene)
    for index in range(plan.seconds * FRAME_RATE):
        yield weather(next(source), index)


# --------------------------------------------------------------------------- encoding


def encode(plan: ClipPlan, path: Path, scenes: dict[str, Scene], sprites: dict[str, Sprite]) -> None:
    _, width, height, encoder, container_format, pix_fmt, _ = next(f for f in FORMATS if f[0] == plan.format)
    time_base = Fraction(1, FRAME_RATE)
    with av.open(str(path), mode="w", format=container_format) as container:
        options = dict(CARD_H264_OPTIONS) if encoder == "libx264" else {}
        stream = container.add_stream(encoder, rate=FRAME_RATE, options=options)
        stream.width, stream.height, stream.pix_fmt, stream.time_base = width, height, pix_fmt, time_base
        if encoder == "libx264":
            stream.codec_context.gop_size = H264_GOP_FRAMES
            stream.codec_context.max_b_frames = 0
        else:
            stream.codec_context.qmin = stream.codec_context.qmax = MJPEG_QSCALE
        for index, rgb in enumerate(clip_frames(plan, width, height, scenes, sprites)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def make_clip(job: tuple[ClipPlan, Path, dict, dict]) -> str:
    plan, out, scenes, sprites = job
    path = out / plan.file
    frames = plan.seconds * FRAME_RATE
    if path.exists() and read_clip_info(path).frame_count == frames:
        return f"exists  {plan.file}"
    partial = path.with_name(f".{plan.file}.partial")
    started = time.perf_counter()
    try:
        encode(plan, partial, scenes, sprites)
        found = read_clip_info(partial).frame_count
        if found != frames:
            raise RuntimeError(f"{partial}: {found} frames read back of the {frames} written")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return f"wrote   {plan.file} ({plan.content}, {plan.seconds} s, {path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--animal-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--jobs", type=int, default=2, help="clips made at once (default 2)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in [*REAL_CLIPS, PHOTOS_DIR] if not p.exists()]
    if missing:
        raise SystemExit(f"the card is made from the real media in {SHARED}, and these are missing: {', '.join(missing)}")
    out = args.out_dir
    (out / "clips").mkdir(parents=True, exist_ok=True)
    scenes, sprites, left_out = find_scenes_and_sprites(out)
    for reason in left_out:
        print(f"left out {reason}")
    print(f"{len(scenes)} empty scenes, {len(sprites)} photo animals")
    plans = plan_card(args.clips, args.animal_share, scenes, sprites, args.seed)
    with open(out / "card.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(plans[0])))
        writer.writeheader()
        writer.writerows(asdict(plan) for plan in plans)
    (out / "sources.json").write_text(json.dumps({"scenes": [asdict(s) for s in scenes], "sprites": [asdict(s) for s in sprites], "left_out": left_out}, indent=1))
    by_name = ({s.name: s for s in scenes}, {s.name: s for s in sprites})
    started = time.perf_counter()
    jobs = [(plan, out / "clips", *by_name) for plan in plans]
    # The longest first, so that two processes finish together.
    jobs.sort(key=lambda job: -job[0].seconds * next(f[1] * f[2] for f in FORMATS if f[0] == job[0].format))
    # Spawned, not forked: a child forked from a process that has run OpenCV and the detector's
    # thread pools can block for ever in cv2 (their locks are copied held).
    with get_context("spawn").Pool(args.jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        for line in pool.imap_unordered(make_clip, jobs):
            print(line, flush=True)
    print(f"{len(plans)} clips in {out / 'clips'} ({time.perf_counter() - started:.0f} s); their plan: {out / 'card.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
