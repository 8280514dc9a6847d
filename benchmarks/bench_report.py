"""The report at 10,000 files: how long it takes to make, how much it weighs, and how a browser
copes with it (headless Chromium, Debian's ``chromium``).

    .venv/bin/python benchmarks/bench_report.py [--files 10000] [--out bench-out/report]

The run: ``--files`` photos (1280 x 720 JPEGs, hard links to 24 pictures of scikit-image's
samples, so each has its own path and is read as its own file) in 50 camera folders, with the
records an image predict run would leave: 30% with one or two boxes, each classified among
zamba's 11 European classes (random probabilities, fixed seed), the rest without a box. Each is
timed: making the report the first time (every thumbnail made), again (thumbnails reused), and
Chromium opening the page (a 1280 x 900 window), with the time the page's script took to draw the
cards and how many thumbnails the browser loaded (only those in view: they load lazily).
Writes bench-out/report/bench_report.json and prints a markdown table.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model, instruction_sets  # noqa: E402

SPECIES = ("bird", "blank", "domestic_cat", "european_badger", "european_beaver", "european_hare",
           "european_roe_deer", "north_american_raccoon", "red_fox", "weasel", "wild_boar")  # fmt: skip
PICTURES = ("astronaut", "camera", "cat", "chelsea", "coffee", "horse", "rocket", "hubble_deep_field", "immunohistochemistry",
            "moon", "page", "text", "coins", "grass", "gravel", "brick", "colorwheel", "logo", "motorcycle_left",
            "motorcycle_right", "retina", "shepp_logan_phantom", "skin", "lily")  # fmt: skip


def source_photos(folder: Path) -> list[Path]:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PICTURES:
        try:
            pixels = getattr(data, name)()
        except Exception:  # a sample that needs a download (pooch): skipped
            continue
        image = Image.fromarray(np.asarray(pixels)).convert("RGB").resize((1280, 720))
        path = folder / f"{name}.jpg"
        image.save(path, quality=85)
        paths.append(path)
    return paths


def make_run(work: Path, count: int) -> Path:
    from kifaru.outputs import RunDescription, get_writer
    from kifaru.outputs.results_file import RESULTS_FILE
    from kifaru.runs.journal import file_fingerprint
    from kifaru.runs.records import MEDIA_IMAGE, Record

    rng = np.random.default_rng(0)
    sources = source_photos(work / "sources")
    data, results = work / "data", work / "results"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    records = []
    for index in range(count):
        path = data / f"cam{index % 50:02d}" / f"IMG_{index:05d}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[index % len(sources)], path)
        record = Record(str(path), media=MEDIA_IMAGE, fingerprint=file_fingerprint(path))
        record.outputs.update(image_size=[1280, 720], taken=None)
        boxes, crops = [], []
        for number in range(int(rng.choice([0, 1, 2], p=[0.7, 0.2, 0.1]))):
            x, y = rng.uniform(0, 0.6, 2)
            w, h = rng.uniform(0.1, 0.4, 2)
            score = float(rng.uniform(0.2, 1.0))
            boxes.append([x, y, x + w, y + h, score])
            probabilities = rng.dirichlet(np.full(len(SPECIES), 0.3)).tolist()
            crops.append({"detection": number, "box": [round(x * 1280), round(y * 720), round((x + w) * 1280), round((y + h) * 720)],
                          "conf": score, "category": "1", "probabilities": probabilities})  # fmt: skip
        record.frames = [{"frame_number": 0, "time": 0.0, "detections": boxes, "categories": ["1"] * len(boxes)}]
        record.outputs["crops"] = crops
        records.append(record)
    run = RunDescription("image predict", species=SPECIES, model="random.ckpt", threshold=0.2, root=data, base=work,
                         detector={"name": "boxes given", "detections_threshold": 0.2, "boxes_kept_down_to": 0.2})  # fmt: skip
    (results / RESULTS_FILE).write_text(get_writer("results_jsonl").render(records, run), encoding="utf-8")
    return results


def open_in_chromium(page: Path, profile: Path) -> dict:
    from html.parser import HTMLParser

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {"chromium": "not installed"}

    class Dom(HTMLParser):
        body: dict = {}
        cards = images = loaded = 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "body":
                Dom.body = a
            elif tag == "article":
                Dom.cards += 1
            elif tag == "img":
                Dom.images += 1
                Dom.loaded += a.get("data-loaded") == "1"

    started = time.perf_counter()
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--window-size=1280,900",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    Dom().feed(done.stdout)
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    return {"chromium": version, "open_and_dump_s": round(seconds, 2), "render_ms": int(Dom.body.get("data-render-ms", -1)),
            "cards": Dom.cards, "images": Dom.images, "images_loaded": Dom.loaded}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "report")
    args = parser.parse_args()
    from kifaru.report import THUMBNAILS, write_report

    results = make_run(args.out, args.files)
    started = time.perf_counter()
    first = write_report(results)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = write_report(results)
    again_s = time.perf_counter() - started
    thumbs = list((results / THUMBNAILS).iterdir())
    browser = open_in_chromium(first.path, args.out / "chromium-profile")
    figures = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "instruction_sets": [k for k, v in instruction_sets().items() if v]},
        "files": args.files,
        "first_report_s": round(first_s, 1),
        "again_s": round(again_s, 1),
        "page_mb": round(again.page_bytes / 1e6, 2),
        "thumbnails": len(thumbs),
        "thumbnails_mb": round(again.thumbnail_bytes / 1e6, 1),
        "thumbnail_kb_mean": round(again.thumbnail_bytes / max(1, len(thumbs)) / 1e3, 1),
        "browser": browser,
    }
    (args.out / "bench_report.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print()
    print("| files | report (first) | again | page | thumbnails | Chromium: open + draw | script draws | thumbnails loaded at open |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.files} | {first_s:.1f} s | {again_s:.1f} s | {figures['page_mb']} MB | {len(thumbs)}, {figures['thumbnails_mb']} MB "
          f"({figures['thumbnail_kb_mean']} kB each) | {browser.get('open_and_dump_s')} s | {browser.get('render_ms')} ms | "
          f"{browser.get('images_loaded')} of {browser.get('images')} |")


if __name__ == "__main__":
    main()
