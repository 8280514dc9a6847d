"""Images per hour: ``kifaru image predict`` against zamba 2.7.2's image classifier driven the way
``zamba image predict`` drives it, on the same photos, boxes and checkpoint, in one run.

    ZAMBA_PYTHON=/path/to/zamba-venv/bin/python .venv/bin/python benchmarks/bench_image_predict.py \
        [--data-root ../shared/data] [--copies 3] [--model convnextv2_base]

zamba's ``predict`` cannot run here as it is (it always runs MegaDetector v5a, whose module and
weights are missing), so its loop runs with MegaDetector's call replaced by the same boxes kifaru
is given: ``load_image``, per box ``absolute_bbox``, ``Image.crop``, its eval transforms and one
network call per crop under ``torch.no_grad`` (zamba 2.7.2's ``zamba.images.manager.predict``).
kifaru runs ``predict_images`` with ``--detections-file`` (the same boxes), its defaults otherwise
(photos read in worker processes, crops batched, channels-last, inference mode), and again with
``--num-workers 0``. Each side's time runs from loading the checkpoint to the last crop.

The photos: ENA24's 21 of zamba's test assets (1 to 3 boxes each, from their md_annotations.json),
each copied ``--copies`` times under another name, so that each side reads every file. The
checkpoint: a random-weight ImageClassifierModule of ``--model`` (lila.science's architecture,
ConvNeXtV2-base, by default) written by kifaru, which zamba loads (tests/images/test_zamba_agreement).
Each side runs twice, the first run as warm-up; the figure is the second. Writes
bench-out/bench_image_predict.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from machine import machine  # noqa: E402

ZAMBA_LOOP = r"""
import json, sys, time
from pathlib import Path
import torch
import types
detection = types.ModuleType("detection")  # zamba.images.manager imports MegaDetector's, missing from its PyPI install
detection.run_detector = types.ModuleType("detection.run_detector")
sys.modules.setdefault("detection", detection)
sys.modules.setdefault("detection.run_detector", detection.run_detector)
import timm
import zamba.images.classifier
create = timm.create_model
def offline_create_model(name, pretrained=False, **kwargs):  # its weights are the checkpoint's: no model hub
    return create(name, pretrained=False, **kwargs)
timm.create_model = zamba.images.classifier.timm.create_model = offline_create_model
from torchvision.transforms import transforms
from zamba.images.bbox import BboxLayout, absolute_bbox, load_image
from zamba.images.manager import get_default_transforms
from zamba.models.instantiation import instantiate_model

checkpoint, listing, boxes_file = sys.argv[1:4]
boxes = {e["file"]: e["detections"] for e in json.loads(Path(boxes_file).read_text())["images"]}
root = Path(boxes_file).parent
files = sorted(Path(listing).read_text().split()[1:])
times = []
for attempt in range(2):
    start, crops = time.perf_counter(), 0  # from loading the model, as kifaru's figure
    module = instantiate_model(checkpoint=Path(checkpoint))
    module.eval()
    top, bottom, size = get_default_transforms(module.model_family, module.image_size)
    image_transforms = transforms.Compose(top + bottom)
    for filepath in files:
        image = load_image(filepath)
        for detection in boxes[Path(filepath).relative_to(root).as_posix()]:
            bbox = absolute_bbox(image, detection["bbox"], bbox_layout=BboxLayout.XYWH)
            input_data = image_transforms(image.crop(bbox))
            with torch.no_grad():
                torch.softmax(module(input_data.unsqueeze(0)), dim=1).squeeze(0).numpy()
            crops += 1
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": times, "photos": len(files), "crops": crops, "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def make_photos(data_root: Path, out: Path, copies: int) -> tuple[Path, Path, int]:
    """The photos (copies of ENA24's), their filepaths CSV and a MegaDetector file of their boxes."""
    source = data_root / "zamba-test-assets" / "images" / "ena24_small"
    md = json.loads((source / "md_annotations.json").read_text())
    photos = out / "photos"
    shutil.rmtree(photos, ignore_errors=True)
    photos.mkdir(parents=True)
    images, names, crops = [], [], 0
    for entry in md["images"]:
        detections = [d for d in entry.get("detections") or [] if d["conf"] >= 0.2]
        for copy in range(copies):
            name = f"{Path(entry['file']).stem}_{copy}.jpg"
            shutil.copyfile(source / entry["file"], photos / name)
            images.append({"file": name, "detections": detections})
            names.append(str(photos / name))
            crops += len(detections)
    boxes = photos / "boxes.json"
    boxes.write_text(json.dumps({"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"}, "images": images}))
    listing = out / "filepaths.csv"
    listing.write_text("filepath\n" + "\n".join(names) + "\n")
    return listing, boxes, crops


def run_kifaru(checkpoint: Path, listing: Path, boxes: Path, out: Path, num_workers: int) -> list[float]:
    """Seconds of each of two runs, from resolving (the checkpoint read) to the outputs written."""
    from kifaru.config.image import ImagePredictConfig
    from kifaru.runs.image_predict import predict_images, resolve_image_run

    times = []
    for attempt in range(2):
        save_dir = out / f"kifaru_{num_workers}_{attempt}"
        shutil.rmtree(save_dir, ignore_errors=True)
        config = ImagePredictConfig(filepaths=listing, checkpoint=checkpoint, save_dir=save_dir, gpus=0, num_workers=num_workers)
        start = time.perf_counter()
        report = predict_images(config, run=resolve_image_run(config, detections_file=boxes))
        times.append(time.perf_counter() - start)
        assert not report.failed, [r.reason for r in report.failed]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--model", default="convnextv2_base")
    parser.add_argument("--zamba-python", default=os.environ.get("ZAMBA_PYTHON", str(Path.home() / ".cache/kifaru-bench/zamba-venv/bin/python")))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "bench_image_predict")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from tests.images.photos import write_image_checkpoint

    species = [f"class_{i:03d}" for i in range(178)]
    checkpoint = write_image_checkpoint(args.out / f"{args.model}.ckpt", species=species, model_name=args.model, seed=5, image_size=224)
    listing, boxes, crops = make_photos(args.data_root, args.out, args.copies)
    photos = len(listing.read_text().split()) - 1
    result = {"machine": machine(), "photos": photos, "crops": crops, "model": args.model, "command": " ".join(sys.argv)}
    result["kifaru_seconds"] = run_kifaru(checkpoint, listing, boxes, args.out, num_workers=3)  # the default
    result["kifaru_in_process_seconds"] = run_kifaru(checkpoint, listing, boxes, args.out, num_workers=0)
    zamba = subprocess.run(
        [args.zamba_python, "-c", ZAMBA_LOOP, str(checkpoint), str(listing), str(boxes)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    if zamba.returncode != 0:
        raise SystemExit(f"zamba's loop failed:\n{zamba.stderr[-3000:]}")
    zamba_result = json.loads(zamba.stdout.strip().splitlines()[-1])
    assert zamba_result["crops"] == crops, (zamba_result["crops"], crops)
    result["zamba"] = zamba_result
    kifaru_s, zamba_s = result["kifaru_seconds"][-1], zamba_result["seconds"][-1]
    result["ratio"] = zamba_s / kifaru_s
    (ROOT / "bench-out" / "bench_image_predict.json").write_text(json.dumps(result, indent=1))
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {', '.join(m['instruction_sets'])}; torch {m['torch']} (kifaru), {zamba_result['torch']} (zamba)")
    print(f"{photos} photos, {crops} crops, {args.model} at 224 px (second of two runs each)\n")
    print("| | seconds | photos/hour | crops/s |")
    print("|---|---:|---:|---:|")
    rows = (
        ("zamba 2.7.2's loop (model load included)", zamba_s),
        ("kifaru image predict (default: photos read in worker processes)", kifaru_s),
        ("kifaru image predict --num-workers 0", result["kifaru_in_process_seconds"][-1]),
    )
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {photos / seconds * 3600:.0f} | {crops / seconds:.2f} |")
    print(f"\nkifaru / zamba speed: {result['ratio']:.2f}x (default), {zamba_s / result['kifaru_in_process_seconds'][-1]:.2f}x (in-process)")


if __name__ == "__main__":
    main()
