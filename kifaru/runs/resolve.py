"""Resolution shared by every command, in the library: the loader config (the model's default with
overrides on top), the detector's device, and the detector a run's frames need, resolved once,
here, before any worker process starts (weights fetched and checked, the device checked, the ONNX
export made), so that no worker downloads or exports anything, unseen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError

DETECTOR_DEVICE_FIELD = "video_loader_config.megadetector_lite_config.device"


@dataclass
class DetectorSetup:
    """Where a run's MegadetectorLite comes from (nothing, when its config has no detector)."""

    weights: Optional[Path] = None
    weights_sha256: Optional[str] = None
    device: Optional[str] = None
    detector: Any = None  # loaded in this process (a run without workers), or a stand-in
    runtime: Optional[str] = None  # the loaded detector's runtime, for the banner

    def task(self, kind: str, config: VideoLoaderConfig, screen: Any = None) -> Any:
        """The task of ``kind`` ("detect": the detector over sampled frames; "frames": the frames
        a model sees) for frames read with ``config``, using this detector (with fast mode's
        ``screen``, a :class:`kifaru.video.screen.Screen`, first)."""
        from kifaru.runs.tasks import DetectFile, LoadFrames

        task_class = {"detect": DetectFile, "frames": LoadFrames}[kind]
        return task_class(config, self.weights, self.device, detector=self.detector, screen=screen)


def resolve_detector(
    config: VideoLoaderConfig, *, weights: Optional[Path] = None, workers: int = 0, detector: Any = None
) -> DetectorSetup:
    """The detector for frames read with ``config``: ``detector`` if given (used in this process),
    else MegadetectorLite's checked weights (``weights``, or the model cache, fetched on first
    use) on the config's device; loaded here when the run has no workers, else exported for them."""
    from kifaru.models.registry import MEGADETECTOR_LITE

    settings = config.megadetector_lite_config
    if settings is None:
        return DetectorSetup()
    from kifaru.detection.megadetector_lite import export_before_workers, load_megadetector_lite

    if detector is None and workers == 0:  # loaded here, once (the loader checks the device and the weights)
        detector = load_megadetector_lite(weights=weights, device=settings.device)
    if detector is not None:
        if workers > 0:
            raise ValueError("a detector object runs in this process only: use no worker processes with it")
        return DetectorSetup(
            getattr(detector, "weights", None),
            MEGADETECTOR_LITE.weights_sha256,
            getattr(detector, "device", None),
            detector,
            getattr(detector, "runtime", None),
        )
    from kifaru.models.weights import resolve_weights
    from kifaru.runtime.device import check_device

    device = check_device(settings.device, DETECTOR_DEVICE_FIELD)
    path = resolve_weights(MEGADETECTOR_LITE, weights).resolve()
    # resolve_weights checked the file against the registry: its sha256 is the entry's.
    export_before_workers(path, MEGADETECTOR_LITE.weights_sha256, device)
    return DetectorSetup(path, MEGADETECTOR_LITE.weights_sha256, device)


def model_loader_config(
    given: Optional[VideoLoaderConfig],
    hyper_parameters: dict[str, Any],
    model_class: str,
    family: Optional[str],
    source: Any,
    overrides: Optional[dict[str, Any]] = None,
    overrides_name: str = "video_loader_overrides",
) -> VideoLoaderConfig:
    """The loader config of a run, the same rule for predict and train: ``given`` if any, else a
    kifaru checkpoint's own (its hyper_parameters record it), else the official one of the model's
    ``family``; with ``overrides`` (the CLI's ``--set``) on top of whichever it is. ``source``:
    where the model comes from, for messages (a checkpoint's path)."""
    config = given
    if config is None:
        recorded = hyper_parameters.get("video_loader_config")
        if isinstance(recorded, dict):
            try:
                config = VideoLoaderConfig.model_validate(recorded)
            except ValueError as error:
                raise ConfigError(f"checkpoint {source}: its video_loader_config is invalid ({error})") from None
        elif family is None:
            raise ConfigError(f"checkpoint {source}: a {model_class} has no default video_loader_config; give one")
        else:
            from kifaru.models.official import video_model_entry

            config = video_model_entry(family).default_video_loader_config()
    return _with_overrides(config, overrides, overrides_name) if overrides else config


def _with_overrides(config: VideoLoaderConfig, overrides: dict[str, Any], name: str) -> VideoLoaderConfig:
    from kifaru.config.files import override_layers, validate_layered_config

    base = ("video_loader_config", {"video_loader_config": config.model_dump(exclude_unset=False)})
    return validate_layered_config([base, *override_layers(overrides, name)]).video_loader_config


def check_frame_count(hyper_parameters: dict[str, Any], config: VideoLoaderConfig) -> None:
    """ConfigError when the loader gives another number of frames than the model takes."""
    from kifaru.video.selection import wanted_total_frames

    needed = hyper_parameters.get("num_frames")
    total = wanted_total_frames(config) if config.ensure_total_frames else None
    if needed is not None and total is not None and int(needed) != total:
        raise ConfigError(
            f"video_loader_config gives {total} frames per video but the model takes {needed}: "
            f"set total_frames (and megadetector_lite_config.n_frames) to {needed}"
        )


def with_detector_device(config: VideoLoaderConfig, device: str) -> VideoLoaderConfig:
    """The detector's device resolved (zamba records it): where it is not given, the run's GPU
    if it has one, else the CPU."""
    from kifaru.runtime.device import check_device

    detector = config.megadetector_lite_config
    if detector is None:
        return config
    if detector.device not in (None, "auto"):
        check_device(detector.device, DETECTOR_DEVICE_FIELD)
        return config
    detector_device = device if device.startswith("cuda") else "cpu"
    return config.model_copy(update={"megadetector_lite_config": detector.model_copy(update={"device": detector_device})})
