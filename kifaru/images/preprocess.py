"""How each family of image classifiers sees a photo, declared once per family (zamba 2.7.2's eval
transforms, ``zamba.images.manager.get_default_transforms``):

- ``lila.science`` (and any other timm network): resized to fit ``size x size`` keeping its aspect
  ratio (PIL's default bicubic filter), centred on black, then ``(x / 255 - 0.45) / 0.225``;
- ``speciesnet``: stretched to ``size x size`` (bicubic), then ``x / 255``.

A checkpoint names its family in ``hyper_parameters["model_family"]`` (zamba's legacy
``zamba_model``); older ones are inferred from the timm name, as zamba does: ``tf_efficientnetv2*``
is SpeciesNet's, anything else lila.science's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
from PIL import Image

from kifaru.registry import Registry

LILA_SCIENCE = "lila.science"
SPECIESNET = "speciesnet"


@dataclass(frozen=True)
class ImageFamily:
    name: str
    default_size: int
    keep_aspect: bool  # resize-and-pad (True) or stretch (False)
    mean: Optional[float]  # per channel, after / 255 (None: no normalisation)
    std: Optional[float]

    def to_input(self, image: Image.Image, size: int) -> np.ndarray:
        """float32 (3, size, size): what the network takes for the RGB ``image``."""
        return self.normalise(np.asarray(self.fit(image, size)))

    def fit(self, image: Image.Image, size: int) -> Image.Image:
        """The RGB ``image`` made ``size x size`` the family's way (training augments this)."""
        if self.keep_aspect:
            return resize_and_pad(image, size)
        return image.resize((size, size), Image.BICUBIC)

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (3, H, W) network input from fitted uint8 (H, W, 3) pixels."""
        array = np.asarray(pixels, dtype=np.float32) / np.float32(255)
        if self.mean is not None:
            array = (array - np.float32(self.mean)) / np.float32(self.std)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


FAMILIES: Registry[ImageFamily] = Registry("image model family", "image model families")
FAMILIES.register(LILA_SCIENCE, ImageFamily(LILA_SCIENCE, 224, keep_aspect=True, mean=0.45, std=0.225))
FAMILIES.register(SPECIESNET, ImageFamily(SPECIESNET, 480, keep_aspect=False, mean=None, std=None))


def resize_and_pad(image: Image.Image, size: int) -> Image.Image:
    """``image`` scaled to fit ``size x size`` and centred on black: zamba's ``resize_and_pad``
    (sides truncated to whole pixels, at least 2)."""
    width, height = image.size
    if width > height:
        new_width, new_height = size, max(int(size * (height / width)), 2)
    else:
        new_width, new_height = max(int(size * (width / height)), 2), size
    resized = image.resize((new_width, new_height))  # PIL's default filter (bicubic), as zamba
    canvas = Image.new("RGB", (size, size))
    canvas.paste(resized, ((size - new_width) // 2, (size - new_height) // 2))
    return canvas


def family_of(hyper_parameters: Mapping[str, Any]) -> ImageFamily:
    """The preprocessing family a checkpoint was trained with (see the module)."""
    named = hyper_parameters.get("model_family") or hyper_parameters.get("zamba_model")
    if isinstance(named, str) and named:
        return FAMILIES[named]
    model_name = str(hyper_parameters.get("model_name") or "").lower()
    return FAMILIES[SPECIESNET if model_name == SPECIESNET or model_name.startswith("tf_efficientnetv2") else LILA_SCIENCE]


def input_size(hyper_parameters: Mapping[str, Any], family: ImageFamily, override: Optional[int] = None) -> int:
    """The side of the network's input: ``override`` (the config's image_size), else the
    checkpoint's, else the family's default. A checkpoint may store a pair (480, 480)."""
    size: Any = override if override is not None else hyper_parameters.get("image_size")
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else family.default_size
