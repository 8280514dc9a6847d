"""Training data at training speed: every labelled clip's frames selected once, then read from
the frame cache in every epoch.

:func:`cache_clips` loads each clip once (in worker processes, as predict does) into the frame
cache and reports the clips that could not be read (their failure records), which training then leaves out: a clip is
never trained on as zeros. :class:`CachedClips` serves the cached frames (augmented, for the
training split) with their multi-hot targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from kifaru.config.video import VideoLoaderConfig
from kifaru.runs.records import Record


@dataclass(frozen=True)
class CachedFrames:
    """Where each readable clip's frames are, and the failure records of the clips that could not be read."""

    entries: dict[str, Path]  # filepath -> its frame cache entry
    failures: list[Record]


def default_frame_cache_dir() -> Path:
    """The user's cache folder for kifaru's frames (env VIDEO_CACHE_DIR or the config's cache_dir win)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("kifaru")) / "frames"


def cache_clips(
    filepaths: Sequence[str],
    config: VideoLoaderConfig,
    num_workers: int,
    detector: Any = None,
    progress: Optional[Callable[[Record, int, int], None]] = None,
) -> CachedFrames:
    """Load every clip into the frame cache (``config.cache_dir``, which must be set), a run on the
    engine without a journal (the frame cache is what a rerun reuses): clips already there are
    read from it, not decoded again (and checked again: a cached clip without the frames the model
    needs is a failure). ``detector``: the run's resolved detector
    (:func:`kifaru.runs.resolve.resolve_detector`), resolved here if not given.
    ``progress(record, done, total)``."""
    from kifaru.runs.backends import backend_for
    from kifaru.runs.engine import run_items
    from kifaru.runs.inputs import items_from
    from kifaru.runs.resolve import resolve_detector
    from kifaru.video.cache import FrameCache

    if config.cache_dir is None:
        raise ValueError("cache_clips needs a video_loader_config with cache_dir set")
    cache = FrameCache(Path(config.cache_dir), config)
    detector = detector if detector is not None else resolve_detector(config, workers=num_workers)

    def pipeline(todo: Sequence[Any], finish: Callable[[Record], None]) -> None:
        with backend_for(detector.task("frames", config), num_workers) as backend:
            for loaded in backend.map(todo):
                finish(loaded.record)

    items = items_from(filepaths)
    result = run_items(items, pipeline, progress=progress)
    entries = {item.name: cache.entry_path(item.path) for item, record in zip(items, result.records) if not record.failed}
    return CachedFrames(entries, result.failed)


class CachedClips:
    """A map-style dataset: item i is (uint8 frames (T, H, W, 3), float32 multi-hot target)."""

    def __init__(
        self,
        entries: Sequence[Path],
        targets: np.ndarray,
        augment: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    ) -> None:
        if len(entries) != len(targets):
            raise ValueError(f"{len(entries)} clips but {len(targets)} targets")
        self.entries = list(entries)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        import torch

        entry = self.entries[index]
        try:
            with np.load(entry, allow_pickle=False) as stored:
                frames = stored["frames"]
        except (OSError, ValueError, KeyError) as error:
            raise RuntimeError(
                f"frame cache entry {entry} cannot be read ({error}); was the cache folder cleaned "
                "while training ran? Run again: the clip is cached anew."
            ) from error
        if self.augment is not None:
            frames = self.augment(frames)
        return torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(self.targets[index])
