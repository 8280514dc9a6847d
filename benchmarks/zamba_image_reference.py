"""zamba 2.7.2's image classifier on random weights: the probabilities kifaru's must match.

Runs in zamba's venv (see zamba_setup.sh), offline:

    HF_HUB_OFFLINE=1 /path/to/zamba-venv/bin/python benchmarks/zamba_image_reference.py \
        [--data-root ../shared/data] [--kifaru-checkpoint CKPT]

zamba's ``zamba image predict`` cannot run here: it always loads MegaDetector v5a, whose module
(``detection``) its PyPI install lacks and whose weights cannot be downloaded. So this script drives
zamba's own pieces as ``zamba.images.manager.predict`` does: ``ImageClassifierModule`` (built by
zamba, filled with the seeded weights of tests/models/random_checkpoint.py, saved with zamba's
``to_disk`` and loaded back with ``instantiate_model``, as predict loads a checkpoint), zamba's
``load_image``, ``absolute_bbox`` + ``Image.crop`` for boxes, ``get_default_transforms`` for the
family's eval transforms, and ``softmax``. For each case it records the probabilities of:

- every photo of ``zamba-test-assets/images`` (the four single photos and ENA24's 21) whole
  (``crop_images: false``);
- the network's input for each whole photo, averaged over 12 x 12 cells per channel (the
  transform checked apart from the network: random EfficientNet weights on unnormalised inputs
  give nearly the same probabilities for every photo);
- every ENA24 photo cropped to the boxes of ``ena24_small/md_annotations.json`` (the same boxes
  given to kifaru), with the pixel box zamba cut.

Cases: ``lila`` (ConvNeXtV2-base, lila.science's architecture, at 224 px with zamba's
resize-and-pad and 0.45/0.225 normalisation) and ``speciesnet`` (a small EfficientNetV2 of the
``tf_efficientnetv2`` family zamba treats as SpeciesNet's: bicubic resize to 480 px, no
normalisation). zamba's timm ``create_model(pretrained=True)`` is answered without the model hub
(the weights are replaced anyway).

``--kifaru-checkpoint CKPT``: also load a checkpoint kifaru wrote with zamba's ``instantiate_model``
and record what zamba predicts with it on the whole photos (kifaru's checkpoints must load in zamba).

Writes tests/fixtures/zamba_images/reference.json; the checkpoints go to bench-out/zamba_images/.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "models"))
from random_checkpoint import random_state_dict  # noqa: E402

SPECIES = [
    "american_black_bear", "american_crow", "blank", "cat", "chicken", "chimpanzee", "eastern_fox_squirrel",
    "equid", "grey_fox", "striped_skunk", "virginia_opossum", "wild_dog",
]  # fmt: skip
CASES = {
    # name -> (timm model, weight seed, image_size or None for the family's default)
    "lila": ("convnextv2_base", 21, None),
    "speciesnet": ("tf_efficientnetv2_b0", 22, None),
}
IMAGES = "zamba-test-assets/images"


def offline_timm() -> None:
    """zamba builds its network with ``pretrained=True``: build it without ImageNet weights."""
    import timm

    create = timm.create_model

    def create_model(name, pretrained=False, **kwargs):
        return create(name, pretrained=False, **kwargs)

    timm.create_model = create_model
    import zamba.images.classifier

    zamba.images.classifier.timm.create_model = create_model


def without_megadetector() -> None:
    """zamba.images.manager imports MegaDetector's ``detection.run_detector`` (missing from zamba's
    PyPI install) at the top; only its transforms are used here, so an empty module stands in."""
    import types

    detection = types.ModuleType("detection")
    detection.run_detector = types.ModuleType("detection.run_detector")
    sys.modules.setdefault("detection", detection)
    sys.modules.setdefault("detection.run_detector", detection.run_detector)


def photos(data_root: Path) -> list[Path]:
    folder = data_root / IMAGES
    singles = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".webp", ".png"))
    return singles + sorted((folder / "ena24_small").glob("*.jpg"))


def build_checkpoint(case: str, out_dir: Path) -> Path:
    from zamba.images.classifier import ImageClassifierModule

    model_name, seed, image_size = CASES[case]
    size = image_size or (480 if case == "speciesnet" else 224)
    module = ImageClassifierModule(model_name=model_name, species=SPECIES, image_size=size, batch_size=8)
    module.model.load_state_dict(random_state_dict(module.model, seed))
    path = out_dir / f"{case}_random_seed{seed}.ckpt"
    module.to_disk(path)
    return path


def predict(checkpoint: Path, data_root: Path, boxes: dict) -> dict:
    from PIL import Image  # noqa: F401
    from torchvision.transforms import transforms
    from zamba.images.bbox import BboxLayout, absolute_bbox, load_image
    from zamba.images.manager import get_default_transforms
    from zamba.models.instantiation import instantiate_model

    module = instantiate_model(checkpoint=checkpoint)
    module.eval()
    top, bottom, size = get_default_transforms(module.model_family, module.image_size)
    transform = transforms.Compose(top + bottom)

    def probabilities(image) -> list[float]:
        with torch.no_grad():
            return torch.softmax(module(transform(image).unsqueeze(0)), dim=1).squeeze(0).tolist()

    whole, crops, inputs = {}, {}, {}
    for path in photos(data_root):
        name = path.relative_to(data_root / IMAGES).as_posix()
        image = load_image(path)
        whole[name] = probabilities(image)
        # The network's input itself, averaged over 12 x 12 cells per channel: checks the
        # transform apart from the network (whose random weights may hide a small difference).
        pooled = torch.nn.functional.adaptive_avg_pool2d(transform(image).unsqueeze(0), 12)
        inputs[name] = [round(v, 6) for v in pooled.flatten().tolist()]
        for index, detection in enumerate(boxes.get(path.name, []) if path.parent.name == "ena24_small" else []):
            bbox = absolute_bbox(image, detection["bbox"], bbox_layout=BboxLayout.XYWH)
            crops[f"{name}#{index}"] = {
                "bbox_relative": detection["bbox"],
                "bbox_pixels": [int(v) for v in bbox],
                "probabilities": probabilities(image.crop(bbox)),
            }
    return {
        "model_family": module.model_family,
        "image_size": size,
        "hyper_parameters": {k: v for k, v in dict(module.hparams).items() if isinstance(v, (str, int, float, list, type(None)))},
        "whole": whole,
        "crops": crops,
        "input_cells": inputs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench-out" / "zamba_images")
    parser.add_argument("--fixture", type=Path, default=ROOT / "tests" / "fixtures" / "zamba_images" / "reference.json")
    parser.add_argument("--kifaru-checkpoint", type=Path, help="a checkpoint kifaru wrote, loaded with zamba")
    parser.add_argument("--kifaru-label", default="", help="what made that checkpoint (recorded)")
    args = parser.parse_args()
    torch.manual_seed(0)
    offline_timm()
    without_megadetector()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md = json.loads((args.data_root / IMAGES / "ena24_small" / "md_annotations.json").read_text())
    boxes = {image["file"]: image.get("detections") or [] for image in md["images"]}

    fixture = json.loads(args.fixture.read_text()) if args.fixture.exists() else {}
    if args.kifaru_checkpoint is None:
        fixture = {
            "versions": {p: importlib.metadata.version(p) for p in ("zamba", "torch", "timm", "torchvision", "pillow")},
            "species": SPECIES,
            "photos": [p.relative_to(args.data_root / IMAGES).as_posix() for p in photos(args.data_root)],
            "cases": {},
        }
        for case, (model_name, seed, _) in CASES.items():
            checkpoint = build_checkpoint(case, args.out_dir)
            result = predict(checkpoint, args.data_root, boxes)
            result.update(model_name=model_name, weight_seed=seed, checkpoint_sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest())
            fixture["cases"][case] = result
            top = max(max(p) for p in result["whole"].values())
            print(f"{case}: {len(result['whole'])} photos, {len(result['crops'])} crops, largest probability {top:.3f}")
    else:
        result = predict(args.kifaru_checkpoint, args.data_root, boxes)
        result["made_by"] = args.kifaru_label
        result["versions"] = {p: importlib.metadata.version(p) for p in ("zamba", "torch", "timm", "torchvision", "pillow")}
        fixture["kifaru_checkpoint_in_zamba"] = result
        print(f"kifaru's checkpoint loaded in zamba: {len(result['whole'])} photos")
    args.fixture.parent.mkdir(parents=True, exist_ok=True)
    args.fixture.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {args.fixture}")


if __name__ == "__main__":
    main()
