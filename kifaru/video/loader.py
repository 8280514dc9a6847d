"""``load_video_frames``: a video file in, the exact frames a model sees out.

The pipeline follows zamba's order (crop, resample, select, resize for selection, pick frames,
detector, resize for the model, ensure the count), but plans which source frames are needed from
timestamps first and decodes only those (see ``kifaru.video.decode``). With MegadetectorLite, each
candidate frame is decoded once and kept twice, small: fitted to the detector's input and resized
for the model; the detector scores them in batches and ``select_by_scores`` picks the frames.
"""

from __future__ import annotations

import atexit
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.config.video import VideoLoaderConfig, resolve_cache_dir
from kifaru.exceptions import ConfigError, DecodeError, FrameSelectionWarning, MediaError, PartialDecodeWarning
from kifaru.video.cache import FrameCache
from kifaru.video.detector_steps import DetectorSteps
from kifaru.video.screen import Screen
from kifaru.video.screen_steps import ScreenSteps
from kifaru.video.loaded import (  # noqa: F401 (kifaru.video.loader's names)
    DECIDED_BY_CLASSIFIER,
    DECIDED_BY_DETECTOR,
    KEPT_BOX_THRESHOLD,
    NO_FRAME,
    ClipDetections,
    LoadedFrames,
    Prepared,
    Thumbnails,
    TileRequest,
    average_rate,
    detections_from_arrays,
    detections_to_arrays,
)
from kifaru.video.decode import DecodedFrame, PyAVVideoSource, StreamInfo, VideoSource
from kifaru.video.image import ImageSource
from kifaru.video.media import is_image
from kifaru.video.sheet import MAX_TILE_WIDTH, MAX_TILES, evenly_chosen, to_tile
from kifaru.video.selection import (
    SceneChangeScorer,
    ensure_frame_count,
    plan_by_timestamps,
    wanted_total_frames,
)
from kifaru.video.transform import Size, crop_bottom, resize_for_model, resize_for_selection, to_pix_fmt

def open_source(path: str | Path) -> VideoSource:
    """The decoder for a file: still images through PIL, everything else through PyAV."""
    return ImageSource(path) if is_image(path) else PyAVVideoSource(path)


def _size(height: Optional[int], width: Optional[int]) -> Optional[Size]:
    return (height, width) if height is not None and width is not None else None


class FrameLoader(DetectorSteps, ScreenSteps):
    """Loads frames for one config; holds the frame cache and cleans it up on ``close()``.

    ``detector``: anything with MegadetectorLite's ``detect_fitted``; by default the process's
    shared MegadetectorLite, loaded when a clip first needs it. ``screen``: fast mode's (see
    :mod:`kifaru.video.screen`), for a config with the detector; its results are not cached.
    """

    def __init__(self, config: Optional[VideoLoaderConfig] = None, detector: Any = None, screen: Optional[Screen] = None) -> None:
        self.config = config or VideoLoaderConfig()
        self._detector = detector
        self.screen = screen if self.config.megadetector_lite_config is not None else None
        self._detection_thread: Optional[ThreadPoolExecutor] = None
        cache_dir = resolve_cache_dir(self.config)
        self.cache = FrameCache(cache_dir, self.config) if cache_dir is not None else None

    def close(self) -> None:
        if self._detection_thread is not None:
            self._detection_thread.shutdown()
            self._detection_thread = None
        if self.cache is not None and self.config.cleanup_cache:
            self.cache.clear()

    def __enter__(self) -> "FrameLoader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from kifaru.detection.megadetector_lite import load_megadetector_lite

            self._detector = load_megadetector_lite(device=self.config.megadetector_lite_config.device)
        return self._detector

    # -- public ------------------------------------------------------------------------------
    def load(self, path: str | Path) -> LoadedFrames:
        path = Path(path)
        if self.cache is not None and path.is_file():
            cached = self.cache.get(path)
            if cached is not None:
                return LoadedFrames(
                    frames=cached["frames"],
                    source_indices=cached["source_indices"].tolist(),
                    times=cached["times"].tolist(),
                    from_cache=True,
                    scores=cached["scores"].tolist() if "scores" in cached else None,
                    detections=detections_from_arrays(cached),
                    frame_rate=float(cached["frame_rate"]) if "frame_rate" in cached else None,
                )
        if self.screen is not None:
            screened = self._load_screened(path)
            if screened is not None:
                return screened
        loaded = self._load_from_file(path)
        assert isinstance(loaded, LoadedFrames)
        if self.cache is not None:
            self.cache.put(
                path,
                {
                    "frames": loaded.frames,
                    "source_indices": np.asarray(loaded.source_indices, dtype=np.int64),
                    "times": np.asarray(loaded.times, dtype=np.float64),
                    **({} if loaded.scores is None else {"scores": np.asarray(loaded.scores, dtype=np.float64)}),
                    **detections_to_arrays(loaded.detections),
                    **({} if loaded.frame_rate is None else {"frame_rate": np.asarray(loaded.frame_rate, dtype=np.float64)}),
                },
            )
        return loaded

    def load_thumbnails(
        self, path: str | Path, max_count: int = MAX_TILES, max_width: int = MAX_TILE_WIDTH
    ) -> Thumbnails:
        """The frames :meth:`load` would return, described, and at most ``max_count`` of them,
        evenly chosen, as RGB tiles at most ``max_width`` wide.

        Memory stays bounded by the tiles: each chosen frame is shrunk as soon as it is decoded
        and the others are not kept (when MegadetectorLite or ``scene_threshold`` selects the
        frames, every candidate is kept, shrunk, until the choice is made). The tiles are the
        ones the full frames would give (same resize), and nothing is written to the cache.
        """
        path = Path(path)
        if self.cache is not None and path.is_file() and self.cache.get(path) is not None:
            return Thumbnails.of(self.load(path), self.config.pix_fmt, max_count, max_width)
        thumbnails = self._load_from_file(path, TileRequest(max_count, max_width))
        assert isinstance(thumbnails, Thumbnails)
        return thumbnails

    def estimated_shape(self, path: str | Path) -> tuple[int, int, int, int]:
        """An upper bound on the shape of what :meth:`load` returns, from the file's index alone
        (nothing is decoded): for warning about a large array before building it."""
        config = self.config
        source = open_source(path)
        try:
            info = source.info
            if isinstance(source, ImageSource) or config.scene_threshold:
                candidates = list(range(info.frame_count))
            else:
                duration = info.duration if info.complete else float(info.end_time)
                candidates = plan_by_timestamps(config, info.timestamps, info.end_time, duration, info.keyframes)
                detector = config.megadetector_lite_config
                if detector is not None and detector.n_frames:
                    candidates = candidates[: detector.n_frames]
            count = len(self._final_plan(candidates, source))
            height, width = (
                _size(config.model_input_height, config.model_input_width)
                or _size(config.frame_selection_height, config.frame_selection_width)
                or (info.height - (config.crop_bottom_pixels or 0), info.width)  # rotation keeps the area
            )
        finally:
            source.close()
        return count, height, width, 3

    # -- pipeline ----------------------------------------------------------------------------
    def _open_and_decode(
        self, path: Path, keep_pixels: bool = True, tiles: Optional["TileRequest"] = None
    ) -> tuple[VideoSource, list[str], "Prepared", list[int]]:
        """Plan and decode a file's frames: (its closed source, notes on problems, the prepared
        frames, the plan). With ``tiles``, frames are kept only as the tiles asked for."""
        source = open_source(path)
        try:
            info = source.info
            notes: list[str] = []
            if not info.complete:
                notes.append(f"{path}: {info.problem}; using the {info.frame_count} frames that could be read")
            prepared, plan = self._select_and_decode(source, notes, keep_pixels, tiles)
        finally:
            source.close()
        return source, notes, prepared, plan

    def _final_plan(self, plan: list[int], source: VideoSource) -> list[int]:
        """The selected frames after ensure_total_frames (a photo repeats as a clip would)."""
        config = self.config
        if isinstance(source, ImageSource):
            return [0] * (wanted_total_frames(config) or 1)
        if config.ensure_total_frames:
            return ensure_frame_count(plan, wanted_total_frames(config))
        return plan

    def _load_from_file(self, path: Path, tiles: Optional["TileRequest"] = None) -> "LoadedFrames | Thumbnails":
        """The selected frames (or, with ``tiles``, their thumbnails) of a file."""
        config = self.config
        source, notes, prepared, plan = self._open_and_decode(path, tiles=tiles)
        info = source.info
        score_of, selection_note, detections = None, None, None
        if config.megadetector_lite_config is not None:
            detections = self._scored_frames(sorted(set(plan)), prepared, info)  # a photo's boxes too, for the outputs
            if not isinstance(source, ImageSource):  # a photo's one frame needs no choosing
                plan, score_of, selection_note = self._select_by_detector(plan, prepared)
        damaged = sorted(prepared.damaged.intersection(plan))
        if damaged:
            notes.append(
                f"{path}: {len(damaged)} selected frame(s) were decoded from damaged data and may show "
                f"artefacts (source frames {', '.join(map(str, damaged[:10]))})"
            )

        total = wanted_total_frames(config) if config.ensure_total_frames else None
        plan = self._final_plan(plan, source)
        if plan:
            times = [float(info.timestamps[i]) for i in plan]
            if tiles is None:
                frames = _stack_consuming(plan, prepared.frames)
        else:
            frames = self._no_frames(info, total, notes, path)
            plan, times = [NO_FRAME] * len(frames), [float("nan")] * len(frames)
        scores = None if score_of is None else [score_of.get(i, float("nan")) for i in plan]
        for note in notes:
            warnings.warn(PartialDecodeWarning(note), stacklevel=3)
        if selection_note:
            notes.append(f"{path}: {selection_note}")
            warnings.warn(FrameSelectionWarning(notes[-1]), stacklevel=3)
        if tiles is None:
            return LoadedFrames(
                to_pix_fmt(frames, config.pix_fmt),
                plan,
                times,
                info,
                notes,
                scores=scores,
                detections=detections,
                frame_rate=None if isinstance(source, ImageSource) else average_rate(info),
            )
        positions = evenly_chosen(len(plan), tiles.max_count)
        if plan and plan[0] != NO_FRAME:
            chosen, frame_shape = [prepared.frames[plan[p]] for p in positions], prepared.frame_shape
        else:  # nothing selected: the frames of zeros, if ensure_total_frames asks for them
            chosen, frame_shape = [to_tile(frames[p], tiles.max_width) for p in positions], frames.shape[1:]
        return Thumbnails(plan, times, frame_shape, chosen, positions, info, notes, scores=scores)

    def _select_and_decode(
        self, source: VideoSource, notes: list[str], keep_pixels: bool = True, tiles: Optional["TileRequest"] = None
    ) -> tuple["Prepared", list[int]]:
        """The plan (source index per output frame) and the prepared frames it uses.

        When frames cannot be decoded, the clip is taken to end before the first of them and
        the plan is made again, so nothing is ever filled in with frames that do not exist.
        """
        config, info = self.config, source.info
        frame_count = info.frame_count
        prepared = Prepared(keep_pixels=keep_pixels, tile_width=tiles.max_width if tiles else None)
        for _attempt in range(4):
            timestamps = info.timestamps[:frame_count]
            end_time = info.end_time if frame_count == info.frame_count else info.timestamps[frame_count]
            if config.scene_threshold:
                plan = self._scene_plan(source, frame_count, prepared)
            else:
                duration = info.duration if frame_count == info.frame_count and info.complete else float(end_time)
                plan = plan_by_timestamps(config, timestamps, end_time, duration, info.keyframes)
                if config.ensure_total_frames and wanted_total_frames(config) is not None and not config.megadetector_lite_config:
                    # Frames past the count would only be clipped off: don't decode them (the
                    # detector, though, chooses among all of them).
                    plan = plan[: wanted_total_frames(config)]
                if tiles is not None and not config.megadetector_lite_config:
                    # The tiles are known from the plan: keep only their frames.
                    final = self._final_plan(plan, source)
                    prepared.keep_only = {final[p] for p in evenly_chosen(len(final), tiles.max_count)}
                needed = [i for i in set(plan) if i not in prepared.frames or prepared.lacks_pixels(i)]
                self._decode_into(source, needed, prepared)
            missing = sorted(set(plan) - set(prepared.frames))
            if not missing:
                return prepared, plan
            reason = "; ".join(source.last_failures) or "no picture"
            notes.append(
                f"{info.path}: frames from {float(info.timestamps[missing[0]]):.2f} s on could not be "
                f"decoded ({reason}); using the {missing[0]} frames before them"
            )
            frame_count = missing[0]
            if frame_count == 0:
                break
        raise DecodeError(info.path, "no frame could be decoded" + (f" ({'; '.join(source.last_failures)})" if source.last_failures else ""))

    def _frame_geometry(self, source: VideoSource) -> tuple[int, int]:
        """(rows to crop at full size, reduced-resolution factor to decode at).

        Decoding at 1/2, 1/4... of the size is chosen only while the (cropped) frame stays at
        least as large as the next resize target in both directions, so it never upsamples.
        """
        crop = self.config.crop_bottom_pixels or 0
        target = _size(self.config.frame_selection_height, self.config.frame_selection_width) or _size(
            self.config.model_input_height, self.config.model_input_width
        )
        factor = 1
        info = source.info
        # The detector's scores shift with the pixels it is given: it sees full-size frames, as in zamba.
        if target is not None and self.config.megadetector_lite_config is None:
            for candidate in source.lowres_factors():
                if (info.height - crop) / candidate >= target[0] and info.width / candidate >= target[1]:
                    factor = candidate
        return crop, factor

    def _add_prepared(self, frame: DecodedFrame, crop: int, path: str, prepared: "Prepared") -> None:
        """Keep what later steps need of a decoded frame: the frame resized for the model and,
        with the detector, the frame fitted to the detector's input."""
        detector = self.config.megadetector_lite_config
        if detector is None and not prepared.wants_pixels(frame.index):
            prepared.add(frame, None)  # decoded (so it exists) but nothing needs its pixels
            return
        rgb = frame.to_rgb()
        if crop >= rgb.shape[0]:
            raise MediaError(
                path,
                f"crop_bottom_pixels removes {crop} rows but frames are only {rgb.shape[0]} rows "
                f"high here; lower crop_bottom_pixels",
            )
        rgb = crop_bottom(rgb, crop)
        rgb = resize_for_selection(rgb, _size(self.config.frame_selection_height, self.config.frame_selection_width))
        model_size = _size(self.config.model_input_height, self.config.model_input_width)
        pixels = resize_for_model(rgb, model_size) if prepared.wants_pixels(frame.index) else None
        if pixels is not None and prepared.tile_width is not None:
            prepared.frame_shape = pixels.shape
            pixels = to_tile(pixels, prepared.tile_width)
        prepared.add(frame, pixels)
        prepared.kept_rows = rgb.shape[0] / (rgb.shape[0] + crop) if crop else 1.0
        if detector is not None and prepared.score_new:
            from kifaru.detection.megadetector_lite import fit_to_input

            prepared.pending[frame.index] = (fit_to_input(rgb, detector.image_height, detector.image_width), rgb.shape[:2])
            if len(prepared.pending) >= self.detector.submit_size(detector.frame_batch_size):
                self._submit_pending(prepared)

    def _decode_into(self, source: VideoSource, indices: list[int], prepared: "Prepared") -> None:
        if not indices:
            return
        crop, factor = self._frame_geometry(source)
        # When the detector keeps every core busy, decoding threads would only compete with it.
        threaded = self.config.megadetector_lite_config is None or not self.detector.uses_every_core
        for frame in source.decode(indices, scale_down=factor, threaded=threaded):
            self._add_prepared(frame, round(crop / factor), source.info.path, prepared)

    def _scene_plan(self, source: VideoSource, frame_count: int, prepared: "Prepared") -> list[int]:
        """Frames whose scene-change score exceeds the threshold (each once, never padded)."""
        scorer = SceneChangeScorer()
        crop = self.config.crop_bottom_pixels or 0
        plan = []
        for frame in source.decode(range(frame_count)):
            if scorer.score(frame.yuv_planes()) > self.config.scene_threshold:
                plan.append(frame.index)
                self._add_prepared(frame, crop, source.info.path, prepared)
        return sorted(plan)

    def _no_frames(self, info: StreamInfo, total: Optional[int], notes: list[str], path: Path) -> np.ndarray:
        config = self.config
        height = info.height - (config.crop_bottom_pixels or 0)
        size = (
            _size(config.model_input_height, config.model_input_width)
            or _size(config.frame_selection_height, config.frame_selection_width)
            or (height, info.width)
        )
        count = total or 0
        padding = f"; returning {count} frames of zeros as ensure_total_frames asks" if count else ""
        notes.append(f"{path}: no frame was selected{padding}")
        return np.zeros((count, size[0], size[1], 3), dtype=np.uint8)


def _stack_consuming(plan: list[int], frames: dict[int, np.ndarray]) -> np.ndarray:
    """``np.stack`` of the planned frames that lets go of each decoded frame once copied, so a
    clip's frames are not held twice at the peak."""
    last_use = {index: position for position, index in enumerate(plan)}
    out = np.empty((len(plan), *frames[plan[0]].shape), dtype=frames[plan[0]].dtype)
    for position, index in enumerate(plan):
        out[position] = frames[index]
        if last_use[index] == position:
            del frames[index]
    return out


_caches_to_clear: dict[Path, FrameCache] = {}


def load_video(path: str | Path, config: Optional[VideoLoaderConfig] = None, **kwargs: Any) -> LoadedFrames:
    """Like :func:`load_video_frames`, with where each frame came from and any warnings."""
    if config is None:
        try:
            config = VideoLoaderConfig(**kwargs)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    elif kwargs:
        raise TypeError("give either a config or keyword arguments, not both")
    loader = FrameLoader(config)
    if config.cleanup_cache and loader.cache is not None:
        # A lone call's "run" is the process: clear the cache when it exits.
        _caches_to_clear[loader.cache.folder] = loader.cache
    return loader.load(path)


def load_video_frames(path: str | Path, config: Optional[VideoLoaderConfig] = None, **kwargs: Any) -> np.ndarray:
    """The frames a model sees: (frames, height, width, 3) uint8, RGB (or BGR with pix_fmt bgr24).

    Give a :class:`VideoLoaderConfig` or its fields as keyword arguments. Raises a
    :class:`kifaru.exceptions.MediaError` subclass naming the file and the reason when the file
    cannot be used; a clip that decodes only partway gives the frames it has, with a
    :class:`PartialDecodeWarning`.
    """
    return load_video(path, config, **kwargs).frames


@atexit.register
def _cleanup_caches() -> None:
    for cache in _caches_to_clear.values():
        cache.clear()
