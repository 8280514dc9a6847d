"""The fast mode's detector candidates, each measured alone on a card (benchmarks/make_card.py)
against exact mode's detector: what each one costs and how often it agrees.

    .venv/bin/python benchmarks/fast_candidates.py CARD_DIR [--sizes 640 416 320 256] [--limit N]

Exact mode, per clip, is what ``kifaru predict`` computes with time_distributed's defaults: every
frame of the plan (4 a second) decoded at full size, fitted to 640x640, scored by
MegadetectorLite, and zamba's selection at 0.25 picks 16. A clip is an animal clip when a frame
scores above 0.25.

A screen looks first at one planned frame a second (the plan's every 4th: at whole seconds, which
are the keyframes of a camera's stream with a keyframe a second), decoded at a reduced size where
the codec can (MJPEG), scored at a smaller detector input. Where no screen frame reaches the
screen's threshold, the clip is called empty and nothing else is done. Where one does, the planned
frames within a second of the hits are scored as exact mode scores them, the others count as
scoring 0 (a frame below 0.25 does, in zamba's selection), and the selection is made on that.

For each screen size and threshold: the calls that agree with exact mode's, the animal clips it
misses, the clips it sends on to full scoring, the share of exact mode's frames the classifier
would still see (animal clips), and the detector's and decoder's seconds against exact mode's.
The seconds are one process's, on this machine's cores as ``kifaru predict`` uses them.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from machine import machine  # noqa: E402

from kifaru.detection.megadetector_lite import fit_to_input, load_megadetector_lite  # noqa: E402
from kifaru.models.registry import video_model_entry  # noqa: E402
from kifaru.video.decode import PyAVVideoSource  # noqa: E402
from kifaru.video.loader import FrameLoader  # noqa: E402
from kifaru.video.selection import plan_by_timestamps, select_by_scores  # noqa: E402
from kifaru.video.transform import crop_bottom  # noqa: E402

THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25)
NEAR_SECONDS = 1.0  # a screen hit sends the planned frames this close to it to full scoring


def exact(loader: FrameLoader, path: Path) -> dict:
    """Exact mode's detector on one clip: per planned frame (distinct source frames, in time
    order) its score at the config's confidence, its time, the frames chosen, and the seconds."""
    settings = loader.config.megadetector_lite_config
    started = time.perf_counter()
    found = loader.detect(path)
    seconds = time.perf_counter() - started
    scores = [d.score_at(settings.confidence) for d in found.detections]
    chosen, _ = select_by_scores(scores, confidence=settings.confidence, n_frames=settings.n_frames, fill_mode=settings.fill_mode, seed=settings.seed)
    return {"frames": found.frame_numbers, "times": found.times, "scores": scores, "chosen": chosen, "seconds": seconds,
            "animal": any(s > settings.confidence for s in scores)}


def screen_scores(detector, config, path: Path, size: int) -> tuple[list[int], list[float], float, float]:
    """(screen frames, their scores at ``size``, decode seconds, detector seconds)."""
    source = PyAVVideoSource(path)
    info = source.info
    plan = sorted(set(plan_by_timestamps(config, info.timestamps, info.end_time, info.duration, info.keyframes)))
    per_second = max(1, round(config.fps or 4))
    wanted = plan[::per_second]
    crop = config.crop_bottom_pixels or 0
    # Decode smaller where the codec can, as long as the frame stays at least the detector's size.
    factor = 1
    for candidate in source.lowres_factors():
        if info.width / candidate >= size and (info.height - crop) / candidate >= size * info.height / info.width:
            factor = candidate
    started = time.perf_counter()
    frames = [crop_bottom(frame.to_rgb(), round(crop / factor)) for frame in source.decode(wanted, scale_down=factor)]
    fitted = [fit_to_input(f, size, size) for f in frames]
    decoded = time.perf_counter() - started
    source.close()
    started = time.perf_counter()
    found = detector.detect_fitted(fitted, [f.shape[:2] for f in frames], image_height=size, image_width=size, confidence=0.01)
    return wanted, [d.score for d in found], decoded, time.perf_counter() - started


def screened(reference: dict, screen_frames: list[int], screen: list[float], threshold: float, settings) -> dict:
    """What a screen at ``threshold`` followed by full scoring near its hits gives, from the
    exact scores (full scoring near a hit computes exactly those)."""
    times = dict(zip(reference["frames"], reference["times"]))
    hits = [times[f] for f, s in zip(screen_frames, screen) if s >= threshold and f in times]
    near = [i for i, t in enumerate(reference["times"]) if any(abs(t - h) <= NEAR_SECONDS for h in hits)]
    scores = [reference["scores"][i] if i in set(near) else 0.0 for i in range(len(reference["scores"]))]
    animal = any(s > settings.confidence for s in scores)
    chosen, _ = select_by_scores(scores, confidence=settings.confidence, n_frames=settings.n_frames, fill_mode=settings.fill_mode, seed=settings.seed)
    same = len(set(chosen) & set(reference["chosen"])) / max(1, len(reference["chosen"]))
    return {"sent_on": bool(hits), "animal": animal, "scored": len(near), "same_frames": same}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 416, 320, 256])
    parser.add_argument("--limit", type=int, help="only the first N clips of the card")
    parser.add_argument("--json", type=Path, help="write every clip's figures here")
    args = parser.parse_args(argv)
    with open(args.card / "card.csv") as f:
        clips = list(csv.DictReader(f))[: args.limit]
    config = video_model_entry("time_distributed").default_video_loader_config()
    settings = config.megadetector_lite_config
    detector = load_megadetector_lite(device="cpu")
    print(json.dumps(machine()))
    print(f"{len(clips)} clips of {args.card}; exact mode: {config.fps:g} frames a second at {settings.image_width}, confidence {settings.confidence}")
    rows = []
    with FrameLoader(config, detector=detector) as loader:
        loader.detect(args.card / "clips" / clips[0]["file"])  # warm-up: the ONNX session, the thread pools
        for clip in clips:
            path = args.card / "clips" / clip["file"]
            reference = exact(loader, path)
            row = {"file": clip["file"], "made_as": clip["content"], "exact": reference, "screens": {}}
            for size in args.sizes:
                frames, scores, decoded, detected = screen_scores(detector, config, path, size)
                row["screens"][size] = {"frames": frames, "scores": scores, "decode_s": decoded, "detect_s": detected}
            rows.append(row)
            print(f"  {clip['file']}: exact {'animal' if reference['animal'] else 'empty'} ({clip['content']} as made) in {reference['seconds']:.1f} s; "
                  + ", ".join(f"{size}: best {max(row['screens'][size]['scores'], default=0):.2f}" for size in args.sizes), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float))

    exact_seconds = sum(r["exact"]["seconds"] for r in rows)
    exact_frames = sum(len(r["exact"]["frames"]) for r in rows)
    animals = [r for r in rows if r["exact"]["animal"]]
    print(f"\nexact: {len(animals)} of {len(rows)} clips with an animal (as made: {sum(r['made_as'] == 'animal' for r in rows)}); "
          f"{exact_frames} frames scored in {exact_seconds:.1f} s (decoding and detector)")
    print("| screen input | threshold | calls agreeing | animal clips missed | empty clips sent on | frames the classifier sees that exact's are (animal clips: mean, lowest) | frames scored at 640 | screen decode s | screen detector s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        decode_s = sum(r["screens"][size]["decode_s"] for r in rows)
        detect_s = sum(r["screens"][size]["detect_s"] for r in rows)
        for threshold in THRESHOLDS:
            outcomes = [screened(r["exact"], r["screens"][size]["frames"], r["screens"][size]["scores"], threshold, settings) for r in rows]
            agree = sum(o["animal"] == r["exact"]["animal"] for o, r in zip(outcomes, rows))
            missed = sum(r["exact"]["animal"] and not o["animal"] for o, r in zip(outcomes, rows))
            sent_on = sum(o["sent_on"] and not r["exact"]["animal"] for o, r in zip(outcomes, rows))
            same = [o["same_frames"] for o, r in zip(outcomes, rows) if r["exact"]["animal"]]
            scored = sum(o["scored"] for o in outcomes)
            print(f"| {size} | {threshold} | {agree}/{len(rows)} ({100 * agree / len(rows):.1f}%) | {missed} | {sent_on} | "
                  f"{100 * statistics.mean(same) if same else float('nan'):.1f}%, {100 * min(same) if same else float('nan'):.0f}% | "
                  f"{scored} of {exact_frames} | {decode_s:.1f} | {detect_s:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
