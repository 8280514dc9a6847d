"""Decoders behind one small interface: open a file, read its frame index, decode chosen frames.

``open_source(path)`` returns a :class:`VideoSource`. Its ``info`` (a :class:`StreamInfo`) lists
every frame's presentation time and keyframe flag, read by demuxing alone (no decoding), so that
frame selection can be planned before a single frame is decoded. ``decode(indices)`` then decodes
only what those frames need:

- intra-only streams (MJPEG, common in trail cameras): just the wanted frames' packets;
- inter-coded streams (h264, mpeg4...): from each wanted frame's keyframe up to it, skipping the
  packets after the last wanted frame of a GOP and whole GOPs that hold none, and seeking over
  long stretches;
- all of it with FFmpeg's threaded decoding, and at a reduced resolution when the codec supports
  it and the caller says how much smaller it may be (``scale_down``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Protocol, Sequence

import av
import numpy as np

from kifaru.exceptions import (
    DecodeError,
    EmptyMediaError,
    MediaNotFoundError,
    NotAVideoError,
)

# Codecs whose FFmpeg decoder can decode straight to 1/2, 1/4 or 1/8 of the size ("lowres").
_LOWRES_CODECS = {"mjpeg": 3}
# Skipping unneeded packets costs only reading them; seek once a gap holds more bytes than this.
SEEK_GAP_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class StreamInfo:
    """What demuxing (without decoding) tells about a video stream. Lists are in presentation
    order; times are exact, in seconds."""

    path: str
    codec: str
    width: int
    height: int
    timestamps: list[Fraction]
    keyframes: list[bool]
    end_time: Fraction
    duration: float
    complete: bool = True
    problem: str = ""

    @property
    def frame_count(self) -> int:
        return len(self.timestamps)


@dataclass
class DecodedFrame:
    """One decoded frame, with conversions done only on request (most frames are never kept)."""

    index: int
    time: float
    rotation: int
    scale_down: int
    _frame: av.VideoFrame = field(repr=False)

    @property
    def damaged(self) -> bool:
        """The decoder reported errors in this frame (it may show concealment artefacts)."""
        return bool(self._frame.is_corrupt)

    def to_rgb(self) -> np.ndarray:
        """(height, width, 3) uint8 RGB, rotated as the file says it should be displayed."""
        rgb = self._frame.to_ndarray(format="rgb24")
        return np.ascontiguousarray(np.rot90(rgb, self.rotation // 90)) if self.rotation else rgb

    def yuv_planes(self) -> list[np.ndarray]:
        """The Y, U and V planes (4:2:0), for FFmpeg-like scene-change scores."""
        frame = self._frame if self._frame.format.name == "yuv420p" else self._frame.reformat(format="yuv420p")
        return [np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size) for plane in frame.planes]


class VideoSource(Protocol):
    info: StreamInfo

    def decode(self, indices: Sequence[int], scale_down: int = 1, threaded: bool = True) -> Iterator[DecodedFrame]:
        """Yield the frames at these presentation indices (each once, in no promised order).
        ``threaded`` False: decode on the calling thread only (when other work fills the cores)."""

    def lowres_factors(self) -> Sequence[int]:
        """The reduced-resolution factors (1 = full size) this stream can decode at."""

    def close(self) -> None: ...


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaNotFoundError(path, "file not found")
    if path.is_dir():
        raise NotAVideoError(path, "is a folder, not a video file")
    if path.stat().st_size == 0:
        raise EmptyMediaError(path, "file is empty (0 bytes)")


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise NotAVideoError(
            path,
            f"cannot be opened as a video ({error.strerror or error}); check that it is a video file "
            f"and that it was copied completely (an MP4 cut off before its end cannot be read)",
        ) from None


def _normalise_rotation(frame: av.VideoFrame) -> int:
    rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    return rotation if rotation in (90, 180, 270) else 0


@dataclass(frozen=True)
class _Packet:
    key: int  # presentation timestamp (dts when the file has none), in the stream's time base
    position: int  # decode order
    keyframe: bool
    size: int
    duration: int


class PyAVVideoSource:
    """A video file read in-process with PyAV (FFmpeg's libraries; no ffmpeg program needed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _check_file(self.path)
        container = _open_container(self.path)
        try:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no streams"]
                raise NotAVideoError(self.path, f"has no video stream (only {', '.join(kinds)})")
            self._stream_index = container.streams.video[0].index
            self.info, self._packets = self._read_index(container)
        finally:
            container.close()
        if not self._packets:
            detail = f" ({self.info.problem})" if self.info.problem else ""
            raise DecodeError(self.path, f"no video frames in the file{detail}")
        self._by_presentation = sorted(self._packets, key=lambda p: p.key)
        #: Why frames asked of the last decode() call did not come out, if any did not.
        self.last_failures: list[str] = []
        #: Seek over runs of unneeded packets larger than this; reading them costs little.
        self.seek_gap_bytes: float = SEEK_GAP_BYTES

    # -- index -------------------------------------------------------------------------------
    def _read_index(self, container: av.container.InputContainer) -> tuple[StreamInfo, list[_Packet]]:
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base.numerator, stream.time_base.denominator)
        packets: list[_Packet] = []
        problems: list[str] = []
        damaged = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # end-of-stream markers
                    continue
                if packet.is_corrupt:  # cut off (a truncated file) or damaged on disk
                    damaged += 1
                    continue
                key = packet.pts if packet.pts is not None else packet.dts
                if key is None:
                    key = packets[-1].key + max(packets[-1].duration, 1) if packets else 0
                packets.append(
                    _Packet(key, len(packets), bool(packet.is_keyframe), packet.size, packet.duration or 0)
                )
        except av.error.FFmpegError as error:
            problems.append(f"the file breaks off after {len(packets)} frames ({error.strerror or error})")
        if damaged:
            problems.append(f"{damaged} damaged or cut-off frame(s) left out")
        announced = stream.frames or 0
        if announced and len(packets) + damaged < announced - max(2, announced // 50):
            problems.append(
                f"the header announces {announced} frames but only {len(packets)} are in the file (truncated?)"
            )
        # Repeated timestamps (broken muxers): fall back to counting frames in decode order.
        self._sequential = len({p.key for p in packets}) != len(packets)
        if self._sequential:
            time_base = 1 / _frame_rate(stream)
            packets = [_Packet(i, i, p.keyframe, p.size, 1) for i, p in enumerate(packets)]
        by_time = sorted(packets, key=lambda p: p.key)
        # Times count from the container's start, as FFmpeg's tools do (ffmpeg subtracts the
        # input's start time), so resampling lands on the same frames when audio starts first.
        if container.start_time is not None and not self._sequential:
            start = Fraction(container.start_time, av.time_base)
        else:
            start = by_time[0].key * time_base if by_time else Fraction(0)
        timestamps = [p.key * time_base - start for p in by_time]
        if by_time and by_time[-1].duration > 0:
            last_duration = by_time[-1].duration * time_base
        else:
            last_duration = 1 / _frame_rate(stream)
        end_time = timestamps[-1] + last_duration if timestamps else Fraction(0)
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = float(end_time)
        only_video = len(container.streams) == 1
        if timestamps and not announced and (stream.duration or only_video):
            if float(end_time) < duration * 0.95 - 0.5:
                problems.append(
                    f"the header says {duration:.2f} s but frames stop at {float(end_time):.2f} s (truncated?)"
                )
        info = StreamInfo(
            path=str(self.path),
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            timestamps=timestamps,
            keyframes=[p.keyframe for p in by_time],
            end_time=end_time,
            duration=duration,
            complete=not problems,
            problem="; ".join(problems),
        )
        return info, packets

    @property
    def intra_only(self) -> bool:
        return all(p.keyframe for p in self._packets)

    def lowres_factors(self) -> Sequence[int]:
        return [2**k for k in range(_LOWRES_CODECS.get(self.info.codec, 0) + 1)]

    # -- decoding ----------------------------------------------------------------------------
    def positions_to_decode(self, indices: Sequence[int]) -> list[int]:
        """Decode positions of every packet the wanted frames depend on, sorted."""
        if self._sequential:
            return list(range(max(self._by_presentation[i].position for i in indices) + 1))
        if self.intra_only:
            return sorted({self._by_presentation[i].position for i in indices})
        keyframe_positions = [p.position for p in self._packets if p.keyframe] or [0]
        needed: set[int] = set()
        for index in indices:
            packet = self._by_presentation[index]
            gop = max(int(np.searchsorted(keyframe_positions, packet.position, side="right")) - 1, 0)
            first = keyframe_positions[gop]
            if gop > 0 and packet.key < self._packets[first].key:
                first = keyframe_positions[gop - 1]  # a leading frame of an open GOP
            needed.update(range(first, packet.position + 1))
        return sorted(needed)

    def decode(self, indices: Sequence[int], scale_down: int = 1, threaded: bool = True) -> Iterator[DecodedFrame]:
        wanted = {i for i in indices if 0 <= i < len(self._by_presentation)}
        self.last_failures = []
        if not wanted:
            return
        positions = self.positions_to_decode(sorted(wanted))
        index_of_key = {p.key: i for i, p in enumerate(self._by_presentation)}
        position_of_key = {p.key: p.position for p in self._packets}
        output_count = 0

        def frame_index(frame: av.VideoFrame) -> Optional[int]:
            nonlocal output_count
            output_count += 1
            if self._sequential:
                return output_count - 1
            return index_of_key.get(frame.pts)

        container = _open_container(self.path)
        try:
            stream = container.streams[self._stream_index]
            stream.thread_type = "AUTO" if threaded else "NONE"
            if scale_down > 1:
                stream.codec_context.options = {"lowres": str(int(math.log2(scale_down)))}
            codec = stream.codec_context

            def emit(packet: Optional[av.Packet]) -> Iterator[DecodedFrame]:
                try:
                    frames = codec.decode(packet)
                except av.error.FFmpegError as error:
                    self.last_failures.append(f"{error.strerror or error}")
                    return
                for frame in frames:
                    index = frame_index(frame)
                    if index in wanted:
                        wanted.discard(index)
                        time = float(self.info.timestamps[index])
                        yield DecodedFrame(index, time, _normalise_rotation(frame), scale_down, frame)

            packets = iter(container.demux(stream))
            read_up_to = -1  # decode position of the last packet read
            for run_start, run_end in _runs(positions):
                gap = self._packets[read_up_to + 1 : run_start]
                sought = sum(p.size for p in gap) > self.seek_gap_bytes and not self._sequential
                if sought:
                    yield from emit(None)  # drain what the threads hold before jumping
                    codec.flush_buffers()
                    container.seek(self._packets[run_start].key, stream=stream, backward=True)
                    packets = iter(container.demux(stream))
                for packet in packets:
                    if packet.size == 0 or packet.is_corrupt:  # as in the index
                        continue
                    key = packet.pts if packet.pts is not None else packet.dts
                    position = read_up_to + 1 if self._sequential else position_of_key.get(key)
                    if position is None:
                        continue
                    if sought and position > run_start and read_up_to < run_start:
                        raise _SeekMissed()
                    read_up_to = position
                    if position >= run_start:
                        yield from emit(packet)
                    if position >= run_end or not wanted:
                        break
                if not wanted:
                    break
            yield from emit(None)
        except _SeekMissed:
            # The container seeks past the keyframe asked for; read this file without seeking.
            container.close()
            self.seek_gap_bytes = math.inf
            yield from self.decode(sorted(wanted), scale_down, threaded)
            return
        except av.error.FFmpegError as error:
            self.last_failures.append(f"{error.strerror or error}")
        finally:
            container.close()
        if wanted and not self.last_failures:
            self.last_failures.append("the decoder returned no picture for them")

    def close(self) -> None:  # each call opens and closes its own container
        pass


class _SeekMissed(Exception):
    pass


def _runs(positions: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for position in positions:
        if runs and position == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], position)
        else:
            runs.append((position, position))
    return runs


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate.numerator, rate.denominator)
    return Fraction(30)
