"""Photos and image checkpoints for tests, made on the fly: real photos (scikit-image's), drawn
ones, and tiny random-weight timm classifiers saved as zamba's ImageClassifierModule."""

from __future__ import annotations

from pathlib import Path
from datetime import datetime
from typing import Optional, Sequence

import numpy as np
from PIL import Image

SPECIES = ["blank", "cat", "elephant", "zebra"]


def cat_photo() -> Image.Image:
    """scikit-image's photo of a cat (300x451), RGB."""
    from skimage import data

    return Image.fromarray(data.chelsea())


def drawn_photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth coloured scene with a block in it, different for each seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-0.3, 0.3, (2, 3))
    pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    pixels[y0 : y0 + height // 3, x0 : x0 + width // 3] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def save_photos(folder: Path, count: int, suffix: str = ".jpg", start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        path = folder / f"photo_{index:03d}{suffix}"
        drawn_photo(index).save(path)
        paths.append(path)
    return paths


def write_image_checkpoint(
    path: Path,
    species: Sequence[str] = SPECIES,
    model_name: str = "test_convnext",
    seed: int = 0,
    family: Optional[str] = "lila.science",
    image_size: int = 64,
) -> Path:
    """A random-weight ImageClassifierModule checkpoint of the timm network ``model_name``, with
    the weights drawn by seed (tests/models/random_checkpoint.py), so its outputs vary by input."""
    from kifaru.images.classifier import ImageNetwork
    from kifaru.models.checkpoint import write_checkpoint
    from tests.models.random_checkpoint import random_state_dict

    network = ImageNetwork(model_name, len(species))
    network.model.load_state_dict(random_state_dict(network.model, seed))
    hparams = {"model_name": model_name, "image_size": image_size}
    if family is not None:
        hparams["model_family"] = family
    write_checkpoint(path, network, "ImageClassifierModule", list(species), hparams)
    return path


def save_taken(path: Path, image: Image.Image, taken: Optional[datetime]) -> Path:
    """Save ``image`` with ``taken`` as its EXIF DateTimeOriginal (in the Exif IFD, where cameras
    write it); None: no time at all."""
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif.tobytes())  # bytes: PNG drops the Exif IFD of an Exif object
    return path


def save_labelled_photos(folder: Path, per_class: int = 6, classes: Sequence[str] = ("cat", "blank")) -> list[tuple[str, str]]:
    """Photos of each class in ``folder`` (a cat: scikit-image's cat cropped and flipped in turn;
    any other class: drawn scenes), returned as (file name, label) rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    cat = np.asarray(cat_photo())
    for c, label in enumerate(classes):
        for i in range(per_class):
            name = f"{label}_{i:02d}.jpg"
            if label == "cat":
                pixels = cat[i * 3 : 270 + i * 3, i * 5 : 400 + i * 5]
                Image.fromarray(np.ascontiguousarray(pixels[:, ::-1] if i % 2 else pixels)).save(folder / name)
            else:
                drawn_photo(100 * c + i).save(folder / name)
            rows.append((name, label))
    return rows


def write_labels(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] = ("filepath", "label")) -> Path:
    path.write_text("\n".join(",".join(map(str, row)) for row in [header, *rows]) + "\n")
    return path
