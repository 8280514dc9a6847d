"""Train-time augmentations: a list in the YAML, each applied to a whole clip at once.

Each augmentation is one registry entry (a strict config class with its parameters and the
torchvision transform it builds). A clip's frames share the random draw (one flip, one affine,
one colour change for all of them), as a camera's view does not change from frame to frame;
noise is drawn per pixel. Augmentations work on uint8 frames and give uint8 frames back, so that
training feeds the model through exactly the input transform prediction uses.

YAML::

    augmentations:
      - {name: horizontal_flip, p: 0.5}
      - {name: color_jitter, brightness: 0.3, contrast: 0.3}
      - {name: cutout, p: 0.3, scale: [0.02, 0.15]}
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from kifaru.config.base import StrictConfig
from kifaru.registry import Registry

_AUGMENTATIONS: Registry[type["Augmentation"]] = Registry("augmentation")


class Augmentation(StrictConfig):
    """Base: ``p`` is the chance that the augmentation is applied to a clip."""

    name: str
    p: float = Field(0.5, ge=0, le=1)

    def transform(self) -> Any:
        """The torchvision v2 transform, for float (T, 3, H, W) frames in [0, 1]."""
        raise NotImplementedError

    def _sometimes(self, transform: Any) -> Any:
        from torchvision.transforms import v2

        return v2.RandomApply([transform], p=self.p)


def register_augmentation(cls: type[Augmentation]) -> type[Augmentation]:
    return _AUGMENTATIONS.register(cls.model_fields["name"].default, cls)


def augmentation_names() -> list[str]:
    return _AUGMENTATIONS.names()


def _range(low: float, high: float) -> Any:
    return Field((low, high), description="(low, high)")


def _ordered(pair: tuple[float, float], field: str) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{field} must be (low, high) with low <= high, got {list(pair)}")


@register_augmentation
class HorizontalFlip(Augmentation):
    name: Literal["horizontal_flip"] = "horizontal_flip"

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return v2.RandomHorizontalFlip(p=self.p)


@register_augmentation
class Affine(Augmentation):
    """Rotation (degrees either way), translation (fraction of width, height), scale, shear."""

    name: Literal["affine"] = "affine"
    degrees: float = Field(10.0, ge=0, le=180)
    translate: tuple[float, float] = (0.1, 0.1)
    scale: tuple[float, float] = _range(0.9, 1.1)
    shear: float = Field(0.0, ge=0, le=90)

    @model_validator(mode="after")
    def _sensible(self) -> "Affine":
        _ordered(self.scale, "scale")
        if self.scale[0] <= 0:
            raise ValueError(f"scale must be positive, got {list(self.scale)}")
        if not all(0 <= t <= 1 for t in self.translate):
            raise ValueError(f"translate must be fractions in [0, 1], got {list(self.translate)}")
        return self

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return self._sometimes(
            v2.RandomAffine(degrees=self.degrees, translate=self.translate, scale=self.scale, shear=self.shear or None)
        )


@register_augmentation
class ColorJitter(Augmentation):
    """Brightness, contrast, saturation (factors drawn in [1 - x, 1 + x]) and hue (shift in [-x, x])."""

    name: Literal["color_jitter"] = "color_jitter"
    p: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.2, ge=0)
    contrast: float = Field(0.2, ge=0)
    saturation: float = Field(0.2, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return self._sometimes(
            v2.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=self.saturation, hue=self.hue)
        )


@register_augmentation
class Grayscale(Augmentation):
    """Colour clips made grey, as the camera's infrared night clips are."""

    name: Literal["grayscale"] = "grayscale"
    p: float = Field(0.1, ge=0, le=1)

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return v2.RandomGrayscale(p=self.p)


@register_augmentation
class GaussianNoise(Augmentation):
    """Sensor noise: ``std`` on the 0-1 scale, drawn per pixel and frame."""

    name: Literal["gaussian_noise"] = "gaussian_noise"
    std: float = Field(0.03, gt=0, le=1)

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return self._sometimes(v2.GaussianNoise(mean=0.0, sigma=self.std, clip=True))


@register_augmentation
class GaussianBlur(Augmentation):
    """Out-of-focus or rain-covered lens: a blur whose sigma is drawn in ``sigma``."""

    name: Literal["gaussian_blur"] = "gaussian_blur"
    p: float = Field(0.3, ge=0, le=1)
    kernel_size: int = Field(5, ge=3)
    sigma: tuple[float, float] = _range(0.1, 2.0)

    @model_validator(mode="after")
    def _odd_kernel(self) -> "GaussianBlur":
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        _ordered(self.sigma, "sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be positive, got {list(self.sigma)}")
        return self

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return self._sometimes(v2.GaussianBlur(kernel_size=self.kernel_size, sigma=self.sigma))


@register_augmentation
class Cutout(Augmentation):
    """A black rectangle (``scale``: its share of the frame) over the same place in every frame."""

    name: Literal["cutout"] = "cutout"
    scale: tuple[float, float] = _range(0.02, 0.2)
    ratio: tuple[float, float] = _range(0.3, 3.3)

    @model_validator(mode="after")
    def _sensible(self) -> "Cutout":
        _ordered(self.scale, "scale")
        _ordered(self.ratio, "ratio")
        if not 0 < self.scale[1] <= 1:
            raise ValueError(f"scale must be shares of the frame in (0, 1], got {list(self.scale)}")
        return self

    def transform(self) -> Any:
        from torchvision.transforms import v2

        return v2.RandomErasing(p=self.p, scale=self.scale, ratio=self.ratio, value=0)


def parse_augmentation(item: Any) -> Augmentation:
    """One YAML entry (a mapping with ``name``) as its registered class; errors name the valid ones."""
    if isinstance(item, Augmentation):
        return item
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or "name" not in item:
        raise ValueError(f"each augmentation is a mapping with a 'name' (one of {', '.join(augmentation_names())}), got {item!r}")
    name = str(item["name"])
    return _AUGMENTATIONS[name].model_validate(item)  # a ConfigError (a ValueError) names the known ones


class ClipAugmenter:
    """A callable from a uint8 clip (T, H, W, 3) to an augmented uint8 clip of the same shape,
    applying the augmentations in order (torch's random generator decides).

    DataLoader workers receive it pickled (with "spawn", kifaru's start method), so it is a
    module-level class that pickles its augmentations' configs only; each process builds the
    torchvision pipeline from them when it first augments a clip.
    """

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations = list(augmentations)
        self._pipeline: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"augmentations": self.augmentations}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.augmentations = state["augmentations"]
        self._pipeline = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if not self.augmentations:
            return frames
        import torch

        if self._pipeline is None:
            from torchvision.transforms import v2

            self._pipeline = v2.Compose([augmentation.transform() for augmentation in self.augmentations])
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        clip = self._pipeline(clip)
        out = clip.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1)
        return out.contiguous().numpy()


def clip_augmenter(augmentations: Sequence[Augmentation]) -> Callable[[np.ndarray], np.ndarray]:
    """The :class:`ClipAugmenter` of ``augmentations`` (none: the clip unchanged)."""
    return ClipAugmenter(augmentations)
