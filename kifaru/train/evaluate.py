"""Multi-clip evaluation of the holdout: several clips of each video, scored clip by clip
(``test_clip_*``) and per video, the clips' probabilities averaged (``test_video_*``).

How the clips of one video are made, in every frame-selection mode: the evaluation loader config
is the training one asking for N times the frames (``total_frames`` and MegadetectorLite's
``n_frames`` times N), and the N*T frames it selects are cut into N clips of T so that clip 0 is
(about) the clip training sees and the others are the next ones in the mode's own order:

- ``consecutive`` (fps, the file's own rate, i_frames, scene_threshold): clip k is frames
  [k*T, (k+1)*T), the next window in time at the training rate.
- ``interleaved`` (evenly_sample_total_frames): N*T frames spread over the video are every N-th
  frame of N interleaved clips, so each clip spans the whole video at the training's spacing,
  shifted by 1/(N*T) of the video from the previous one. (Consecutive windows would be N times
  denser in time than any clip the model trained on.)
- ``ranked`` / ``ranked_in_time_order`` (MegadetectorLite): the frames are selected in the
  detector's rank order; clip k is the k-th best T frames, put back in time order when the
  training config has ``sort_by_time`` (its default).

A video with fewer frames than N clips need is padded as ``ensure_total_frames`` pads any clip:
by repeating its last selected frame, so its later clips are (partly) that frame again (for
MegadetectorLite: the lowest-ranked frame). Those clips are real frames of the video and are
scored like the others. With ``ensure_total_frames: false`` such a video is left out of the
multi-clip metrics, with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.train.metrics import classification_metrics

CONSECUTIVE, INTERLEAVED, RANKED, RANKED_IN_TIME_ORDER = "consecutive", "interleaved", "ranked", "ranked_in_time_order"


def multi_clip_loader_config(loader: VideoLoaderConfig, clips_per_video: int) -> VideoLoaderConfig:
    """The training loader config asking for ``clips_per_video`` times its frames (see the
    module's description); ConfigError where the frames cannot be multiplied."""
    if clips_per_video == 1:
        return loader
    field = f"train_config.holdout_clips_per_video {clips_per_video}"
    if loader.frame_indices:
        raise ConfigError(
            f"{field}: video_loader_config.frame_indices picks fixed frames, which cannot give several clips; "
            "use holdout_clips_per_video: 1 or select frames by total_frames"
        )
    if loader.early_bias:
        raise ConfigError(
            f"{field}: video_loader_config.early_bias picks 16 fixed frames, which cannot give several clips; use holdout_clips_per_video: 1"
        )
    if loader.total_frames is None:
        raise ConfigError(f"{field}: needs video_loader_config.total_frames (the frames of one clip); set it or use holdout_clips_per_video: 1")
    update: dict[str, Any] = {"total_frames": loader.total_frames * clips_per_video}
    detector = loader.megadetector_lite_config
    if detector is not None:
        # n_frames is set whenever total_frames is (the config fills one from the other). Rank
        # order, so that clip k holds the k-th best frames; clip_positions sorts them by time.
        update["megadetector_lite_config"] = {**detector.model_dump(), "n_frames": detector.n_frames * clips_per_video, "sort_by_time": False}
    # Validated again: the rules that bind total_frames and n_frames still hold.
    return VideoLoaderConfig.model_validate({**loader.model_dump(), **update})


def clip_layout(loader: VideoLoaderConfig) -> str:
    """How the training loader config's multiplied frames are cut into clips (module description)."""
    detector = loader.megadetector_lite_config
    if detector is not None:
        return RANKED_IN_TIME_ORDER if detector.sort_by_time else RANKED
    return INTERLEAVED if loader.evenly_sample_total_frames else CONSECUTIVE


def clip_positions(clips_per_video: int, frames_per_clip: int, layout: str, source_indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """(clips, frames_per_clip) positions into a video's clips*frames_per_clip selected frames.
    ``source_indices`` (each selected frame's frame number) puts ranked clips in time order."""
    positions = np.arange(clips_per_video * frames_per_clip)
    if layout == INTERLEAVED:
        return positions.reshape(frames_per_clip, clips_per_video).T
    clips = positions.reshape(clips_per_video, frames_per_clip)
    if layout == RANKED_IN_TIME_ORDER:
        if source_indices is None or len(source_indices) != len(positions):
            raise ValueError("ranked_in_time_order needs the frame number of every selected frame")
        order = np.argsort(np.asarray(source_indices)[clips], axis=1, kind="stable")
        return np.take_along_axis(clips, order, axis=1)
    if layout not in (CONSECUTIVE, RANKED):
        raise ValueError(f"unknown clip layout {layout}")
    return clips


def multi_clip_metrics(probabilities: np.ndarray, targets: np.ndarray, species: Sequence[str], subset: str = "test") -> dict[str, float]:
    """``{subset}_clip_*``: every clip (videos x clips x species ``probabilities``) scored against
    its video's ``targets`` (videos x species); ``{subset}_video_*``: each video's clips averaged.
    The metrics and names of :func:`classification_metrics`."""
    probabilities = np.asarray(probabilities, dtype=float)
    targets = np.asarray(targets)
    if probabilities.ndim != 3 or probabilities.shape[0] != len(targets):
        raise ValueError(f"probabilities {probabilities.shape} should be (videos, clips, species) for {len(targets)} videos")
    videos, clips, n_species = probabilities.shape
    clip_level = classification_metrics(np.repeat(targets, clips, axis=0), probabilities.reshape(videos * clips, n_species), species, f"{subset}_clip")
    video_level = classification_metrics(targets, probabilities.mean(axis=1), species, f"{subset}_video")
    return {**clip_level, **video_level}


def _read_entry(entry: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(entry, allow_pickle=False) as stored:
            return stored["frames"], stored["source_indices"]
    except (OSError, ValueError, KeyError) as error:
        raise RuntimeError(
            f"frame cache entry {entry} cannot be read ({error}); was the cache folder cleaned while it was read? Run again."
        ) from error


def clip_probabilities(
    module: Any, entries: Sequence[Path], clips_per_video: int, frames_per_clip: int, layout: str, batch_size: int, device: str = "cpu"
) -> tuple[np.ndarray, list[int]]:
    """(videos kept x clips x species) probabilities of ``module`` (a VideoClassificationModule:
    its forward turns uint8 clips into the network's input, as in training) on cached entries
    of ``clips_per_video * frames_per_clip`` frames, and the positions of the entries kept: one
    with another number of frames (ensure_total_frames off) is left out."""
    import torch

    wanted = clips_per_video * frames_per_clip
    kept: list[int] = []
    pending: list[np.ndarray] = []
    outputs: list[np.ndarray] = []

    def run(batch: list[np.ndarray]) -> None:
        frames = torch.from_numpy(np.stack(batch)).to(device)
        outputs.append(torch.sigmoid(module(frames).float()).cpu().numpy())

    was_training, original_device = module.training, module.device
    module.to(device).eval()
    try:
        with torch.no_grad():
            for index, entry in enumerate(entries):
                frames, source_indices = _read_entry(entry)
                if len(frames) != wanted:
                    continue
                kept.append(index)
                pending.extend(frames[clip_positions(clips_per_video, frames_per_clip, layout, source_indices)])
                while len(pending) >= batch_size:
                    run(pending[:batch_size])
                    pending = pending[batch_size:]
            if pending:
                run(pending)
    finally:
        # Lightning left the module on the CPU; the best weights are exported from there.
        module.to(original_device).train(was_training)
    n_species = len(module.species)
    probabilities = np.concatenate(outputs) if outputs else np.zeros((0, n_species), dtype=np.float32)
    return probabilities.reshape(len(kept), clips_per_video, n_species), kept


def evaluate_holdout(
    module: Any,
    filepaths: Sequence[str],
    targets: np.ndarray,
    loader: VideoLoaderConfig,
    clips_per_video: int,
    batch_size: int,
    num_workers: int,
    device: str = "cpu",
    detector: Any = None,
    progress: Optional[Callable[..., None]] = None,
) -> dict[str, float]:
    """``module``'s multi-clip metrics on the holdout ``filepaths`` (with their ``targets``):
    the clips cached with :func:`multi_clip_loader_config` of the training ``loader`` (same frame
    cache folder, its own entries), scored by :func:`multi_clip_metrics`. Files that cannot
    be read that way are left out with a warning, never scored as zeros."""
    from kifaru.train.data import cache_clips
    from kifaru.train.module import TrainWarning

    config = multi_clip_loader_config(loader, clips_per_video)
    cached = cache_clips(filepaths, config, num_workers, detector, progress=progress)
    readable = [i for i, filepath in enumerate(filepaths) if filepath in cached.entries]
    entries = [cached.entries[filepaths[i]] for i in readable]
    frames_per_clip = int(loader.total_frames)
    probabilities, kept = clip_probabilities(module, entries, clips_per_video, frames_per_clip, clip_layout(loader), batch_size, device)
    left_out = len(filepaths) - len(kept)
    if left_out:
        warnings.warn(
            TrainWarning(
                f"multi-clip evaluation: {left_out} of {len(filepaths)} holdout clip(s) left out ({len(cached.failures)} could not be "
                f"read, {len(readable) - len(kept)} had fewer frames than {clips_per_video} clips need); test_clip_* and test_video_* are over the other {len(kept)}"
            ),
            stacklevel=2,
        )
    if not kept:
        return {}
    return multi_clip_metrics(probabilities, np.asarray(targets)[[readable[i] for i in kept]], module.species)
