"""The model classes kifaru builds, each declared once: a checkpoint's ``hyper_parameters["model_class"]``
names one, and its entry says how to build the network, how to feed it, and where its head is.

Light to import (the registry and the configs use the names): PyTorch and the architectures are
imported only when a network is built or fed.

    model_class("SlowFast").build(hyper_parameters, len(species))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kifaru.registry import Registry


@dataclass(frozen=True)
class ModelClass:
    """A video network kifaru can build from a checkpoint's hyper_parameters."""

    name: str  # as checkpoints name it (zamba's class name)
    build: Callable[[Mapping[str, Any], int], Any]  # (hyper_parameters, species count) -> torch.nn.Module
    # A video class: uint8 clips tensor (batch, T, H, W, 3) -> what its forward takes; an image
    # class: float32 (batch, 3, H, W) already preprocessed (kifaru.images.preprocess).
    to_input: Callable[[Any], Any]
    # The state-dict prefix of the classifier head: what training replaces when the species change.
    head_prefix: str = "classifier."
    media: str = "video"  # what it classifies: "video" (clips) or "image" (photos and crops)
    activation: str = "sigmoid"  # per species (multi-label, zamba's video models) or "softmax"


MODEL_CLASSES: Registry[ModelClass] = Registry("model_class", "model classes")


def register_model_class(entry: ModelClass) -> ModelClass:
    """Make ``entry`` known by its name (tests register tiny ones); a name registered twice is a ValueError."""
    return MODEL_CLASSES.register(entry.name, entry)


def model_class(name: str) -> ModelClass:
    """The registered model class ``name``; ConfigError naming the known ones otherwise."""
    return MODEL_CLASSES[name]


def model_class_names() -> list[str]:
    """The registered model classes' names, sorted."""
    return MODEL_CLASSES.names()


def is_known(name: str) -> bool:
    return name in MODEL_CLASSES


_COMMAND_FOR_MEDIA = {"video": "kifaru predict", "image": "kifaru image predict"}


def require_media(name: str, media: str, source: object) -> None:
    """Raise ConfigError if the registered class ``name`` classifies other media than ``media``
    (an image checkpoint given to the video commands, or the reverse), saying which command takes
    it; an unknown class is left to the loader, which lists the known ones."""
    from kifaru.exceptions import ConfigError

    entry = MODEL_CLASSES.get(name)
    if entry is None or entry.media == media:
        return
    raise ConfigError(
        f"checkpoint {source}: a {name} classifies {entry.media}s, not {media}s: "
        f"use `{_COMMAND_FOR_MEDIA[entry.media]}` with it, or give a {media} model's checkpoint"
    )


# -- zamba's two architectures -------------------------------------------------------------------


def _build_time_distributed(hparams: Mapping[str, Any], num_classes: int) -> Any:
    from kifaru.models.time_distributed import TimeDistributedEfficientNet

    # backbone_name: kifaru's own checkpoints of another timm backbone (zamba's are all the default).
    return TimeDistributedEfficientNet(num_classes, num_frames=int(hparams.get("num_frames", 16)), backbone_name=hparams.get("backbone_name"))


def _time_distributed_input(frames: Any) -> Any:
    from kifaru.models.time_distributed import frames_to_input

    return frames_to_input(frames)


def _build_slowfast(hparams: Mapping[str, Any], num_classes: int) -> Any:
    from kifaru.models.slowfast import SlowFast

    # zamba's defaults for the fields a checkpoint may lack.
    return SlowFast(
        num_classes,
        backbone_mode=hparams.get("backbone_mode", "train"),
        post_backbone_dropout=hparams.get("post_backbone_dropout"),
        head_dropout_rate=hparams.get("head_dropout_rate"),
        head_hidden_layer_sizes=hparams.get("head_hidden_layer_sizes"),
        output_with_global_average=hparams.get("output_with_global_average", True),
    )


def _slowfast_input(frames: Any) -> Any:
    from kifaru.models.slowfast import frames_to_input

    return frames_to_input(frames)


TIME_DISTRIBUTED_EFFICIENTNET = register_model_class(
    ModelClass("TimeDistributedEfficientNet", _build_time_distributed, _time_distributed_input, head_prefix="classifier.")
)
SLOWFAST = register_model_class(ModelClass("SlowFast", _build_slowfast, _slowfast_input, head_prefix="head."))


# -- zamba's image classifier ----------------------------------------------------------------------


def _build_image_classifier(hparams: Mapping[str, Any], num_classes: int) -> Any:
    from kifaru.images.classifier import ImageNetwork

    name = hparams.get("model_name")
    if not isinstance(name, str) or not name:
        raise ValueError("an ImageClassifierModule checkpoint names its timm network in hyper_parameters 'model_name'")
    return ImageNetwork(name, num_classes)


def _image_input(batch: Any) -> Any:
    return batch


IMAGE_CLASSIFIER_MODULE = register_model_class(
    ModelClass("ImageClassifierModule", _build_image_classifier, _image_input, head_prefix="model.", media="image", activation="softmax")
)
