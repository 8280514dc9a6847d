"""Peak memory of one large photo through ``kifaru image predict``'s photo task: read upright,
MegadetectorLite's boxes, the crops made network inputs; and the whole-photo path.

    .venv/bin/python benchmarks/image_memory.py [--width 8000 --height 6000]

Each case runs in a fresh child process, after importing what it needs, loading the detector and
one warm-up photo; its high-water mark (``VmHWM``) is reset just before the photo, and the figure
is the peak during the photo minus the resident set before it, against the photo's decoded size
(width x height x 3 bytes).
Writes bench-out/image_memory.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from machine import machine  # noqa: E402

CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from kifaru.runs.image_tasks import LoadPhoto, PhotoSettings
from kifaru.runs.inputs import Item
crop = sys.argv[2] == "crops"
settings = PhotoSettings(crop_images=crop, detections_threshold=0.2, family="lila.science", image_size=224,
                         detector="megadetector_lite" if crop else None, kept_threshold=0.05)
if crop:
    from kifaru.detection.registry import DETECTORS
    settings.detector_weights = DETECTORS["megadetector_lite"].prepare(None, "cpu")
task = LoadPhoto(settings)
task.start()
import numpy as np
from PIL import Image
Image.new("RGB", (64, 48)).save("/tmp/_warm.jpg")
task(Item(0, "/tmp/_warm.jpg", Path("/tmp/_warm.jpg")))  # the first call's one-off allocations
with open("/proc/self/status") as f:
    before = next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the high-water mark (VmHWM) to what is resident now
loaded = task(Item(0, sys.argv[1], Path(sys.argv[1])))
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
print(json.dumps({"before_mib": before, "peak_mib": peak, "failed": loaded.record.failed,
                  "inputs": None if loaded.inputs is None else list(loaded.inputs.shape)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=8000)
    parser.add_argument("--height", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "image_memory")
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    photo = args.out / f"big_{args.width}x{args.height}.jpg"
    pixels = np.empty((args.height, args.width, 3), np.uint8)
    for row in range(0, args.height, 500):  # a scene in bands, with a bright block for the detector
        y, x = np.mgrid[row : min(row + 500, args.height), 0 : args.width]
        pixels[row : row + 500] = ((x[..., None] * [3, 1, 2] // 97 + y[..., None] * [1, 3, 2] // 89) % 200).astype(np.uint8)
    pixels[args.height // 3 : args.height // 2, args.width // 3 : args.width // 2] = (200, 180, 150)
    Image.fromarray(pixels).save(photo, quality=85)
    del pixels
    decoded = args.width * args.height * 3 / 2**20
    result = {"machine": machine(), "command": " ".join(sys.argv), "photo": [args.width, args.height], "decoded_mib": decoded, "cases": {}}
    for case in ("crops", "whole"):
        run = subprocess.run([sys.executable, "-c", CHILD, str(photo), case, str(ROOT)], capture_output=True, text=True, check=True)
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        figures["added_mib"] = figures["peak_mib"] - figures["before_mib"]
        result["cases"][case] = figures
    (ROOT / "bench-out" / "image_memory.json").write_text(json.dumps(result, indent=1))
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores; photo {args.width}x{args.height} JPEG, {decoded:.0f} MiB decoded\n")
    print("| path | resident before (MiB) | peak (MiB) | added by the photo (MiB) | added / decoded size |")  # noqa: E501
    print("|---|---:|---:|---:|---:|")
    for case, f in result["cases"].items():
        print(f"| {case} | {f['before_mib']:.0f} | {f['peak_mib']:.0f} | {f['added_mib']:.0f} | {f['added_mib'] / decoded:.2f} |")


if __name__ == "__main__":
    main()
