"""VideoLoaderConfig and MegadetectorLiteConfig: zamba 2.7.2's fields, defaults and rules."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, field_validator, model_validator

from kifaru.config.base import StrictConfig

# The early_bias strategy (a competition winner's): resample to 24 fps, keep these 16 frames.
EARLY_BIAS_FPS = 24
EARLY_BIAS_FRAME_INDICES = (2, 8, 12, 18, 24, 36, 48, 60, 72, 84, 96, 108, 120, 132, 144, 156)


class FillMode(StrEnum):
    """A StrEnum, so that a member is its value wherever it goes (``str()``, YAML, messages)."""

    repeat = "repeat"
    score_sorted = "score_sorted"
    weighted_euclidean = "weighted_euclidean"
    weighted_prob = "weighted_prob"


class MegadetectorLiteConfig(StrictConfig):
    """Frame selection by the MegadetectorLite animal detector (zamba's MegadetectorLiteYoloXConfig).

    ``device=None`` means "choose when the detector is loaded" (CUDA when present, else CPU):
    validating a config never probes hardware.
    """

    confidence: float = Field(0.25, ge=0, le=1)
    nms_threshold: float = Field(0.45, ge=0, le=1)
    image_width: int = Field(640, gt=0)
    image_height: int = Field(640, gt=0)
    device: Optional[str] = None
    frame_batch_size: int = Field(24, gt=0)
    n_frames: Optional[int] = Field(None, gt=0)
    fill_mode: FillMode = Field(FillMode.score_sorted, validate_default=True)
    sort_by_time: bool = True
    seed: Optional[int] = 55

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: Optional[str]) -> Optional[str]:
        if device is None or device == "auto":
            return None
        kind = device.split(":", 1)[0]
        if kind not in {"cpu", "cuda", "mps"} or (
            ":" in device and not device.split(":", 1)[1].isdigit()
        ):
            raise ValueError(
                f"device '{device}' is not one of cpu, cuda, cuda:N, mps, auto (or leave it out)"
            )
        return device

    @field_validator("fill_mode", mode="before")
    @classmethod
    def _fill_mode_none_is_default(cls, value: Any) -> Any:
        # zamba declares fill_mode Optional; a YAML "fill_mode: null" meant the default there.
        return FillMode.score_sorted if value is None else value


# Rejected combinations, in zamba's order: (field, fields it cannot be used with).
_INCOMPATIBLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fps", ("evenly_sample_total_frames", "i_frames", "scene_threshold")),
    ("i_frames", ("scene_threshold",)),
    (
        "early_bias",
        ("i_frames", "scene_threshold", "total_frames", "evenly_sample_total_frames", "fps"),
    ),
    (
        "frame_indices",
        ("total_frames", "scene_threshold", "i_frames", "early_bias", "evenly_sample_total_frames"),
    ),
    ("megadetector_lite_config", ("early_bias", "evenly_sample_total_frames")),
    ("evenly_sample_total_frames", ("scene_threshold", "i_frames", "fps", "early_bias")),
)

def incompatible_fields(name: str) -> set[str]:
    """The fields that cannot be given with ``name`` (either way round in _INCOMPATIBLE)."""
    return {
        other
        for field, others in _INCOMPATIBLE
        for other in ((*others,) if field == name else (field,) if name in others else ())
    }


# Fields zamba declares Optional with a non-None default: null in a YAML means that default.
_NULL_MEANS_DEFAULT = {
    "i_frames": False,
    "ensure_total_frames": True,
    "early_bias": False,
    "evenly_sample_total_frames": False,
    "pix_fmt": "rgb24",
}


class VideoLoaderConfig(StrictConfig):
    """How a video file becomes the frames a model sees. Field meanings: docs/configuration.md.

    Validation is pure: ``cache_dir`` is not read from the environment here; call
    :func:`resolve_cache_dir` when loading.
    """

    crop_bottom_pixels: Optional[int] = Field(None, ge=0)
    i_frames: bool = False
    scene_threshold: Optional[float] = Field(None, gt=0, le=1)
    megadetector_lite_config: Optional[MegadetectorLiteConfig] = None
    frame_selection_height: Optional[int] = Field(None, gt=0)
    frame_selection_width: Optional[int] = Field(None, gt=0)
    total_frames: Optional[int] = Field(None, gt=0)
    ensure_total_frames: bool = True
    fps: Optional[float] = Field(None, gt=0)
    early_bias: bool = False
    frame_indices: Optional[tuple[int, ...]] = None  # a tuple: a frozen config stays frozen
    evenly_sample_total_frames: bool = False
    pix_fmt: str = "rgb24"
    model_input_height: Optional[int] = Field(None, gt=0)
    model_input_width: Optional[int] = Field(None, gt=0)
    cache_dir: Optional[Path] = None
    cleanup_cache: bool = False

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {
                key: (_NULL_MEANS_DEFAULT[key] if value is None and key in _NULL_MEANS_DEFAULT else value)
                for key, value in data.items()
            }
        return data

    @field_validator("pix_fmt")
    @classmethod
    def _known_pix_fmt(cls, pix_fmt: str) -> str:
        if pix_fmt not in ("rgb24", "bgr24"):
            raise ValueError(f"pix_fmt '{pix_fmt}' is not supported: use rgb24 or bgr24")
        return pix_fmt

    @field_validator("frame_indices")
    @classmethod
    def _non_negative_indices(cls, indices: Optional[tuple[int, ...]]) -> Optional[tuple[int, ...]]:
        if indices is not None and any(index < 0 for index in indices):
            raise ValueError(f"frame_indices must be >= 0, got {indices}")
        return indices

    @model_validator(mode="after")
    def _check_combinations(self) -> "VideoLoaderConfig":
        for first, second in (
            ("frame_selection_height", "frame_selection_width"),
            ("model_input_height", "model_input_width"),
        ):
            if (getattr(self, first) is None) != (getattr(self, second) is None):
                raise ValueError(f"give both {first} and {second}, or neither")
        for field, others in _INCOMPATIBLE:
            if not getattr(self, field):
                continue
            clashing = [other for other in others if getattr(self, other)]
            if clashing:
                raise ValueError(
                    f"{field} cannot be used with {', '.join(clashing)}; remove one of them"
                )
        if self.evenly_sample_total_frames and self.total_frames is None:
            raise ValueError("evenly_sample_total_frames needs total_frames; set total_frames")
        return self._fill_frame_counts()

    def _fill_frame_counts(self) -> "VideoLoaderConfig":
        """MegadetectorLite's n_frames and total_frames default to each other (as in zamba)."""
        detector = self.megadetector_lite_config
        if detector is None:
            return self
        if detector.n_frames is None and self.total_frames is not None:
            detector = detector.model_copy(update={"n_frames": self.total_frames})
            object.__setattr__(self, "megadetector_lite_config", detector)
        if self.total_frames is None and detector.n_frames is not None:
            object.__setattr__(self, "total_frames", detector.n_frames)
        return self

    def cache_key_fields(self) -> dict[str, Any]:
        """Every field that changes the frames (all but cache_dir and cleanup_cache)."""
        return self.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"})


def resolve_cache_dir(config: VideoLoaderConfig) -> Optional[Path]:
    """The frame cache folder: the config's, else env VIDEO_CACHE_DIR ("" or "0" mean off)."""
    if config.cache_dir is not None:
        return Path(config.cache_dir)
    from_env = os.environ.get("VIDEO_CACHE_DIR")
    if from_env in (None, "", "0"):
        return None
    return Path(from_env)
