"""Training data at training speed: every labelled clip's frames selected once, then read from
the frame cache in every epoch.

:func:`cache_clips` loads each clip once (in worker processes, as predict does) into the frame
cache and reports the clips that could not be read, which training then leaves out: a clip is
never trained on as zeros. :class:`CachedClips` serves the cached frames (augmented, for the
training split) with their multi-hot targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from kifaru.config.video import VideoLoaderConfig
from kifaru.failures import STAGE_FILE


@dataclass(frozen=True)
class ClipFailure:
    filepath: str
    stage: str
    reason: str


@dataclass(frozen=True)
class CachedFrames:
    """Where each readable clip's frames are, and the clips that could not be read."""

    entries: dict[str, Path]  # filepath -> its frame cache entry
    failures: list[ClipFailure]


def default_frame_cache_dir() -> Path:
    """The user's cache folder for kifaru's frames (env VIDEO_CACHE_DIR or the config's cache_dir win)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("kifaru")) / "frames"


def cache_clips(
    filepaths: Sequence[str],
    config: VideoLoaderConfig,
    num_workers: int,
    detector_weights: Optional[Path] = None,
    detector_device: Optional[str] = None,
    progress: Optional[Callable[[str, Optional[ClipFailure], int, int], None]] = None,
) -> CachedFrames:
    """Load every clip into the frame cache (``config.cache_dir``, which must be set); clips
    already there are read from it, not decoded again (and checked again: a cached clip without
    the frames the model needs is a failure). ``progress(filepath, failure or None, done, total)``."""
    from kifaru.video.cache import FrameCache
    from kifaru.video.parallel import ClipLoader

    if config.cache_dir is None:
        raise ValueError("cache_clips needs a video_loader_config with cache_dir set")
    cache = FrameCache(Path(config.cache_dir), config)
    entries: dict[str, Path] = {}
    failures: list[ClipFailure] = []
    todo: list[tuple[int, Path]] = []
    for index, filepath in enumerate(filepaths):
        path = Path(filepath)
        if not path.is_file():
            reason = "a folder, not a video file" if path.is_dir() else "no such file"
            failures.append(ClipFailure(filepath, STAGE_FILE, reason))
        else:
            todo.append((index, path))
    done = len(failures)
    if todo:
        with ClipLoader(config, num_workers, detector_weights, detector_device) as loader:
            for result in loader.load(todo):
                filepath = filepaths[result.index]
                failure = None
                if result.failed:
                    failure = ClipFailure(filepath, str(result.failure_stage), str(result.failure_reason))
                    failures.append(failure)
                else:
                    entries[filepath] = cache.entry_path(result.path)
                done += 1
                if progress is not None:
                    progress(filepath, failure, done, len(filepaths))
    order = {filepath: i for i, filepath in enumerate(filepaths)}
    failures.sort(key=lambda failure: order[failure.filepath])
    return CachedFrames(dict(sorted(entries.items(), key=lambda item: order[item[0]])), failures)


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
