"""Training benchmark: ``kifaru image train`` on a labelled set made from real camera-trap photos,
to the macro F1 of photos whose backgrounds it never saw, on the CPU.

    .venv/bin/python benchmarks/bench_image_train.py [--data-root ../shared/data] \
        [--architecture resnet18] [--image-size 96] [--per-background 8] [--max-epochs 40] [--patience 8] \
        [--monitor val_loss|val_macro_f1] [--extra-augmentations] [--cosine-over-run]

The set: the 21 animals of zamba's ENA24 test photos (7 classes x 3 photos; each cut out at its
MegaDetector box, with a margin) pasted at random sizes, places and flips, with small brightness
changes, onto backgrounds of three kinds: the parts of the ENA24 photos away from their animals
(real camera-trap scenes), scikit-image's grass, gravel, brick and camera textures in random
tints, and scikit-image's coffee, rocket and astronaut photos. Each composite is labelled with
its animal's class and the name of its background, and the splits are held out by background
(``split_by: background``, 3:1:1): the val and test photos show the same 21 animals on scenes
the network never saw. That measures that training works end to end (labels, splits, data,
augmentation, the runner) and that the network learns the animals rather than the scenes; it is
not a measure of accuracy on new animals in the field, which would need far more than 21.

The network is trained from scratch (no pretrained weights can be fetched here), on whole photos
(``crop_images: false``: the boxes are known, the detector is not what is measured). Prints the
val and test figures per image and the time; writes bench-out/bench_image_train.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from machine import machine  # noqa: E402

FRAME = (256, 192)  # the composites' size (width, height)


def animals(data_root: Path) -> list[tuple[str, Image.Image]]:
    """(class, cut-out animal) for each ENA24 photo's most confident box."""
    folder = data_root / "zamba-test-assets" / "images" / "ena24_small"
    labels = dict(line.split(",", 1) for line in (folder / "labels.csv").read_text().splitlines()[1:])
    md = json.loads((folder / "md_annotations.json").read_text())
    out = []
    for entry in md["images"]:
        detections = sorted(entry.get("detections") or [], key=lambda d: -d["conf"])
        if not detections:
            continue
        image = Image.open(folder / entry["file"]).convert("RGB")
        x, y, w, h = detections[0]["bbox"]
        margin = 0.1
        box = (
            max(0, int((x - margin * w) * image.width)), max(0, int((y - margin * h) * image.height)),
            min(image.width, int((x + w * (1 + margin)) * image.width)), min(image.height, int((y + h * (1 + margin)) * image.height)),
        )  # fmt: skip
        out.append((labels[entry["file"]].strip().lower().replace(" ", "_"), image.crop(box)))
    return out


def backgrounds(data_root: Path, rng: np.random.Generator) -> dict[str, Image.Image]:
    """name -> a scene at least FRAME in size (see the module)."""
    from skimage import data

    folder = data_root / "zamba-test-assets" / "images" / "ena24_small"
    md = json.loads((folder / "md_annotations.json").read_text())
    scenes: dict[str, Image.Image] = {}
    for entry in md["images"]:
        image = Image.open(folder / entry["file"]).convert("RGB")
        x, _, w, _ = max(entry.get("detections") or [{"bbox": [0, 0, 0, 0], "conf": 0}], key=lambda d: d["conf"])["bbox"]
        # The side of the photo away from the animal.
        left = x * image.width > (1 - x - w) * image.width
        part = image.crop((0, 0, int(x * image.width), image.height) if left else (int((x + w) * image.width), 0, image.width, image.height))
        if part.width >= FRAME[0] // 2:
            scenes[f"ena24_{Path(entry['file']).stem}"] = part.resize((max(part.width, FRAME[0]), max(part.height, FRAME[1])))
    for name in ("grass", "gravel", "brick", "camera"):
        gray = getattr(data, name)().astype(np.float32) / 255
        tint = rng.uniform(0.4, 1.0, 3)
        scenes[f"texture_{name}"] = Image.fromarray((gray[..., None] * tint * 255).astype(np.uint8))
    for name in ("coffee", "rocket", "astronaut"):
        scenes[f"photo_{name}"] = Image.fromarray(getattr(data, name)())
    return scenes


def composite(animal: Image.Image, scene: Image.Image, rng: np.random.Generator) -> Image.Image:
    x0 = int(rng.integers(0, scene.width - FRAME[0] + 1))
    y0 = int(rng.integers(0, scene.height - FRAME[1] + 1))
    frame = scene.crop((x0, y0, x0 + FRAME[0], y0 + FRAME[1])).copy()
    side = rng.uniform(0.5, 0.9) * FRAME[1]
    scale = side / max(animal.width, animal.height)
    cut = animal.resize((max(8, int(animal.width * scale)), max(8, int(animal.height * scale))), Image.BICUBIC)
    if rng.random() < 0.5:
        cut = cut.transpose(Image.FLIP_LEFT_RIGHT)
    cut = ImageEnhance.Brightness(cut).enhance(rng.uniform(0.8, 1.2))
    frame.paste(cut, (int(rng.integers(0, FRAME[0] - cut.width + 1)), int(rng.integers(0, FRAME[1] - cut.height + 1))))
    return frame


def make_set(data_root: Path, out: Path, per_background: int, seed: int = 0) -> tuple[Path, int, int]:
    rng = np.random.default_rng(seed)
    photos = out / "photos"
    shutil.rmtree(photos, ignore_errors=True)
    photos.mkdir(parents=True)
    cutouts, scenes = animals(data_root), backgrounds(data_root, rng)
    rows = ["filepath,label,background"]
    for background, scene in scenes.items():
        for number, (label, animal) in enumerate(cutouts):
            for k in range(per_background):
                name = f"{background}_{number:02d}_{k}.jpg"
                composite(animal, scene, rng).save(photos / name, quality=90)
                rows.append(f"{name},{label},{background}")
    labels = out / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return labels, len(rows) - 1, len(scenes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--architecture", default="resnet18")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument(
        "--per-background", type=int, default=8,
        help="composites of each animal on each background (3 gave 1008 training photos, too few: docs/benchmarks.md)",
    )  # fmt: skip
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_macro_f1"], help="what the best checkpoint and early stopping watch")
    parser.add_argument("--extra-augmentations", action="store_true", help="extra_train_augmentations: true (resized crops, grayscale, equalise, ...)")
    parser.add_argument(
        "--cosine-over-run", action="store_true",
        help="scheduler_config: CosineAnnealingLR with T_max max_epochs (the default's T_max is the patience, so its rate rises again after it)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "bench_image_train")
    args = parser.parse_args()
    from kifaru.config.image import ImageTrainConfig
    from kifaru.train.image_runner import train_images

    labels, count, scenes = make_set(args.data_root, args.out, args.per_background)
    save_dir = args.out / "run"
    shutil.rmtree(save_dir, ignore_errors=True)
    config = ImageTrainConfig(
        data_dir=args.out / "photos", labels=labels, split_by="background", from_scratch=True, architecture=args.architecture,
        pretrained=False, model_name=None, image_size=args.image_size, crop_images=False, lr=args.lr, batch_size=args.batch_size,
        max_epochs=args.max_epochs, early_stopping_patience=args.patience, save_dir=save_dir, seed=0, num_workers=2,
        checkpointing={"monitor": args.monitor}, extra_train_augmentations=args.extra_augmentations,
        scheduler_config={"scheduler": "CosineAnnealingLR", "scheduler_params": {"T_max": args.max_epochs}} if args.cosine_over_run else "default",
    )  # fmt: skip
    from kifaru.notices import listening

    start = time.perf_counter()
    with listening(lambda notice: print(notice.message, flush=True)):  # one line per epoch
        report = train_images(config)
    seconds = time.perf_counter() - start
    splits = {s: report.photos.splits.count(s) for s in ("train", "val", "test")}
    keys = ("val_macro_f1", "val_top_1_accuracy", "test_macro_f1", "test_top_1_accuracy")
    figures = {k: (report.val_metrics | report.test_metrics).get(k) for k in keys}
    result = {
        "machine": machine(), "command": " ".join(sys.argv), "photos": count, "backgrounds": scenes, "splits": splits,
        "classes": report.species, "architecture": args.architecture, "image_size": args.image_size, "epochs": report.epochs, "per_background": args.per_background,
        "monitor": args.monitor, "extra_train_augmentations": args.extra_augmentations, "cosine_over_run": args.cosine_over_run,
        "seconds": seconds, **figures,
    }  # fmt: skip
    (ROOT / "bench-out" / "bench_image_train.json").write_text(json.dumps(result, indent=1))
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {', '.join(m['instruction_sets'])}; torch {m['torch']}")
    print(f"{count} composites of 21 ENA24 animals ({len(report.species)} classes) on {scenes} backgrounds; splits by background {splits}")
    print(f"{args.architecture} from scratch at {args.image_size} px: {report.epochs} epochs in {seconds / 60:.1f} min")
    print("\n| | macro F1 | top-1 accuracy |\n|---|---:|---:|")
    for subset in ("val", "test"):
        print(f"| {subset} (backgrounds not trained on) | {figures[f'{subset}_macro_f1']:.3f} | {figures[f'{subset}_top_1_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
