"""Why the detector's frames are fitted with PIL: how far swscale's bicubic moves the scores.

    python benchmarks/detector_resize_choice.py [--clips bench-out/clips] [--shared ../shared/data]

zamba fits each frame to the detector's 640x640 input with PIL's bicubic (``ImageOps.pad``).
Scaling in FFmpeg's swscale instead (while converting from YUV, or on the RGB frame), even with
PIL's bicubic kernel (param0=0, param1=0.5), would be cheaper. For 24 frames of each trail-camera
clip and each real clip, this prints the largest difference in the per-frame raw score
(max over anchors of objectness x class, before any threshold) from PIL's, and how long each
fit takes.
"""

from __future__ import annotations

import argparse
import fractions
import sys
import time
from pathlib import Path

import av
import numpy as np

from kifaru.detection.megadetector_lite import fit_size, fit_to_input, load_megadetector_lite, to_batch

KEYS_BICUBIC = "bicubic+accurate_rnd+full_chroma_int:param0=0:param1=0.5"


def graph_fit(frame: av.VideoFrame, filters: list[tuple[str, str]]) -> np.ndarray:
    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=frame.width, height=frame.height, format=frame.format.name, time_base=fractions.Fraction(1, 30)
    )
    chain = [source] + [graph.add(name, args) for name, args in filters] + [graph.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    graph.push(frame)
    return graph.pull().to_ndarray(format="rgb24")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=Path("bench-out/clips"))
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    detector = load_megadetector_lite(device="cpu")
    clips = sorted(args.clips.glob("trailcam_*")) + sorted((args.shared / "real-videos").glob("*.mp4"))

    def raw_scores(images: list[np.ndarray]) -> np.ndarray:
        out = detector.raw_outputs(to_batch(images, 640, 640))
        return (out[..., 4] * out[..., 5]).max(axis=1)

    print("| clip | frame -> fitted | swscale from YUV | swscale on RGB | PIL ms/frame | swscale RGB ms/frame |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    worst = {"yuv": 0.0, "rgb": 0.0}
    for clip in clips:
        crop = 50 if clip.name.startswith("trailcam") else 0
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            step = max(1, round(float(stream.average_rate or 30) / 2))
            frames = [f for i, f in enumerate(container.decode(stream)) if i % step == 0][:24]
        rgbs = [np.ascontiguousarray(f.to_ndarray(format="rgb24")[: f.height - crop]) for f in frames]
        height, width = fit_size(*rgbs[0].shape[:2], 640, 640)
        reference = raw_scores([fit_to_input(rgb, 640, 640) for rgb in rgbs])
        scale = ("scale", f"{width}:{height}:flags={KEYS_BICUBIC}")
        from_yuv = [graph_fit(f, [("crop", f"{f.width}:{f.height - crop}:0:0"), scale, ("format", "rgb24")]) for f in frames]
        start = time.perf_counter()
        on_rgb = [graph_fit(av.VideoFrame.from_ndarray(rgb, format="rgb24"), [scale]) for rgb in rgbs]
        rgb_ms = (time.perf_counter() - start) / len(rgbs) * 1000
        start = time.perf_counter()
        [fit_to_input(rgb, 640, 640) for rgb in rgbs]
        pil_ms = (time.perf_counter() - start) / len(rgbs) * 1000
        diffs = {"yuv": float(np.abs(raw_scores(from_yuv) - reference).max()), "rgb": float(np.abs(raw_scores(on_rgb) - reference).max())}
        worst = {k: max(worst[k], diffs[k]) for k in worst}
        print(f"| {clip.name} | {rgbs[0].shape[1]}x{rgbs[0].shape[0]} -> {width}x{height} | {diffs['yuv']:.3f} | {diffs['rgb']:.3f} | {pil_ms:.1f} | {rgb_ms:.1f} |")
    print(f"| **largest** | | **{worst['yuv']:.3f}** | **{worst['rgb']:.3f}** | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
