"""Annotated clips: an mp4 copy of each clip of a run with the detector's boxes and the species
drawn on every frame (``--save-annotated-videos DIR``), as Lightning Pose's
``save_vids_after_training`` shows a model's output on the video itself.

The detector scored only some frames (1 per second by default). Between two scored frames of
one track (:mod:`kifaru.segments.tracker`) the box moves linearly from one to the other; before
a track's first and after its last box it is held for half the gap between scored frames, the
span its box stands for. :func:`boxes_at` is that rule, a pure function of frame numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from statistics import median
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kifaru.outputs.paths import absolute
from kifaru.outputs.results_file import read_results
from kifaru.outputs.summaries import summarize
from kifaru.report.thumbnails import BOX_COLOURS, BOX_WIDTH
from kifaru.runs.records import MEDIA_VIDEO, Record
from kifaru.segments.tracker import Box, Track, link_tracks


@dataclass(frozen=True)
class ShownBox:
    box: Box
    score: float
    track: int  # 1, 2, ... as the segments number them


def hold_frames(frames: Sequence[dict]) -> float:
    """Half the usual gap between scored frames, in frames (0 when a single frame was scored)."""
    numbers = sorted(f["frame_number"] for f in frames)
    gaps = [b - a for a, b in zip(numbers, numbers[1:]) if b > a]
    return median(gaps) / 2 if gaps else 0.0


def boxes_at(tracks: Sequence[Track], frame_number: int, hold: float) -> list[ShownBox]:
    """Each track's box at ``frame_number`` (see the module)."""
    shown = []
    for number, track in enumerate(tracks, start=1):
        sightings = track.sightings
        first, last = sightings[0], sightings[-1]
        if frame_number < first.frame_number - hold or frame_number > last.frame_number + hold:
            continue
        if frame_number <= first.frame_number:
            shown.append(ShownBox(first.box, first.score, number))
            continue
        if frame_number >= last.frame_number:
            shown.append(ShownBox(last.box, last.score, number))
            continue
        for before, after in zip(sightings, sightings[1:]):
            if before.frame_number <= frame_number <= after.frame_number:
                w = (frame_number - before.frame_number) / (after.frame_number - before.frame_number)
                box = tuple((1 - w) * a + w * b for a, b in zip(before.box, after.box))
                shown.append(ShownBox(box, (1 - w) * before.score + w * after.score, number))  # type: ignore[arg-type]
                break
    return shown


def draw(pixels: np.ndarray, boxes: Sequence[ShownBox], label: Optional[str], font: ImageFont.ImageFont) -> np.ndarray:
    """The frame with each box's outline and its label (the species, the detector's score)."""
    image = Image.fromarray(pixels)
    canvas = ImageDraw.Draw(image)
    width, height = image.size
    colour = BOX_COLOURS["animal"]
    for shown in boxes:
        x1, y1, x2, y2 = (round(v * (n - 1)) for v, n in zip(shown.box, (width, height, width, height)))
        canvas.rectangle([x1, y1, x2, y2], outline=colour, width=BOX_WIDTH)
        text = f"{label + ' ' if label else ''}{shown.score:.2f}"
        left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
        tag_y = y1 - (bottom - top) - 4 if y1 - (bottom - top) - 4 >= 0 else y2 + 1
        canvas.rectangle([x1, tag_y, x1 + right - left + 4, tag_y + bottom - top + 3], fill=colour)
        canvas.text((x1 + 2 - left, tag_y + 1 - top), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def annotate_clip(source: Path, target: Path, record: Record, threshold: float, label: Optional[str]) -> int:
    """Write ``target`` (mp4, H.264): ``source`` with ``record``'s boxes drawn; the frames written."""
    import av

    from kifaru.video.decode import DecodedFrame, _normalise_rotation

    tracks = link_tracks(record.frames, threshold)
    hold = hold_frames(record.frames)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    written = 0
    with av.open(str(source), metadata_errors="ignore") as inp, av.open(str(partial), "w", format="mp4") as out:
        video = inp.streams.video[0]
        rate = video.average_rate or video.guessed_rate or (round(record.frame_rate) if record.frame_rate else 25)
        stream = None
        font = None
        for index, frame in enumerate(inp.decode(video)):
            pixels = DecodedFrame(index, float(frame.time or 0.0), _normalise_rotation(frame), 1, frame).to_rgb()
            if stream is None:
                height, width = pixels.shape[:2]
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = width - width % 2, height - height % 2  # 4:2:0 needs even sides
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "20"}
                font = _font(height)
            annotated = draw(pixels, boxes_at(tracks, index, hold), label, font)[: stream.height, : stream.width]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(annotated), format="rgb24")))
            written += 1
        if stream is not None:
            out.mux(stream.encode())
    partial.replace(target)
    return written


def _font(height: int) -> ImageFont.ImageFont:
    size = max(10, height // 30)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: the fixed bitmap font
        return ImageFont.load_default()


@dataclass
class AnnotatedVideos:
    folder: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def write_annotated_videos(results_dir: Path, out: Path) -> AnnotatedVideos:
    """An annotated copy of every clip of the run in ``results_dir`` that was read, under ``out``
    in the clips' own folders (``cam1/clip.AVI`` -> ``out/cam1/clip.mp4``). A clip that cannot
    be read now (moved, damaged) is listed with why; the others are still written."""
    result = AnnotatedVideos(Path(out))
    for part in read_results(results_dir):
        run = part.description
        threshold = run.animal_threshold()
        for record in part.records:
            if record.failed or record.media != MEDIA_VIDEO:
                continue
            summary = summarize(record, run)
            label = (summary.segments[0].species if summary.segments else None) or "animal"  # detect: no species
            relative = PurePosixPath(part.relative_name(record.item)).with_suffix(".mp4")
            target = result.folder / relative
            try:
                annotate_clip(absolute(record.item, run.base), target, record, threshold if threshold is not None else 1.01, label)
            except Exception as error:  # one clip must not stop the others: listed with why
                result.failed.append((record.item, getattr(error, "strerror", None) or str(error) or type(error).__name__))
                continue
            result.written.append(target)
    return result
