"""``kifaru frames VIDEO``: the frames a model would see, as an array and/or a contact sheet."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kifaru.cli.display import show_warnings, warn
from kifaru.cli.exit_codes import EXIT_OK
from kifaru.cli.options import add_config_options, parse_overrides, video_loader_config
from kifaru.exceptions import ConfigError
from kifaru.progress import plural

# Above this, `frames --out` says how large the array will be before building it.
FRAMES_ARRAY_WARN_BYTES = 1 << 30
_FIELDS_THAT_SHRINK_FRAMES = "fps, total_frames, model_input_height/width or frame_selection_height/width"


def register(commands: argparse._SubParsersAction) -> None:
    frames = commands.add_parser("frames", help="show the frames a model would see for a video (array and/or contact sheet)")
    frames.add_argument("video", type=Path, metavar="VIDEO")
    add_config_options(frames)
    frames.add_argument("--out", type=Path, help="write the frames as a .npy array (all of them, at full size)")
    frames.add_argument("--sheet", type=Path, help="write a contact sheet image (.png/.jpg): at most 64 frames, evenly chosen, 320 px wide")
    frames.add_argument("-v", "--verbose", action="store_true", help="list every selected frame")
    frames.set_defaults(handler=handle)


def _check_frames_array_size(loader: Any, video: Path) -> None:
    """Warn before a large ``--out`` array; refuse one that cannot fit in memory (rather than
    be killed partway through)."""
    from kifaru.runtime.memory import available_memory_bytes

    count, height, width, channels = loader.estimated_shape(video)
    size = count * height * width * channels
    if size <= FRAMES_ARRAY_WARN_BYTES:
        return
    described = f"--out: {count} frames of {width}x{height}, a {size / 1e9:.1f} GB array"
    available = available_memory_bytes()
    if available is not None and size > available:
        raise ConfigError(
            f"{described}, more than the {available / 1e9:.1f} GB of memory available; select fewer "
            f"or smaller frames in a config ({_FIELDS_THAT_SHRINK_FRAMES}), or leave out --out "
            f"(--sheet alone needs little memory)"
        )
    warn(f"{described}; {_FIELDS_THAT_SHRINK_FRAMES} in a config make it smaller")


def handle(args: argparse.Namespace) -> int:
    from kifaru.video import FrameLoader, Thumbnails
    from kifaru.video.media import is_image
    from kifaru.video.sheet import MAX_TILE_WIDTH, MAX_TILES, save_contact_sheet

    config = video_loader_config(args.config, parse_overrides(args.set))
    with warnings.catch_warnings(record=True) as caught, FrameLoader(config) as loader:
        warnings.simplefilter("always")
        if args.out:  # the whole array, as asked; the sheet is drawn from it
            _check_frames_array_size(loader, args.video)
            loaded = loader.load(args.video)
            np.save(args.out, loaded.frames)
            selected = Thumbnails.of(loaded, config.pix_fmt)
            del loaded
        else:  # only what the sheet shows is kept, shrunk as it is decoded (one frame, for its shape)
            selected = loader.load_thumbnails(args.video, MAX_TILES if args.sheet else 1)
    show_warnings(caught)
    info = selected.info
    if info is not None and is_image(args.video):
        print(f"{args.video}: photo {info.width}x{info.height}")
    elif info is not None:
        print(
            f"{args.video}: {info.codec} {info.width}x{info.height}, {plural(info.frame_count, 'frame')}, "
            f"{float(info.end_time):.2f} s"
        )
    else:
        print(f"{args.video}: from the frame cache")
    count = selected.selected_count
    print(f"selected {plural(count, 'frame')}, array {(count, *selected.frame_shape)} uint8 ({config.pix_fmt})")
    labels = [
        f"#{i} src {source} t={time:.2f}s" if source >= 0 else f"#{i} (zeros)"
        for i, (source, time) in enumerate(zip(selected.source_indices, selected.times))
    ]
    if selected.scores is not None:  # chosen by MegadetectorLite: show why
        labels = [f"{label} det {score:.2f}" for label, score in zip(labels, selected.scores)]
    if args.verbose:
        for label in labels:
            print(f"  {label}")
    if args.out:
        print(f"wrote {args.out}")
    if args.sheet:
        if selected.tiles:
            tiles = len(selected.tiles)
            width = selected.frame_shape[1]
            shown = f"{tiles} of {count} frames, evenly chosen" if tiles < count else plural(count, "frame")
            if tiles < count or width > MAX_TILE_WIDTH:
                print(f"sheet: {shown}, {min(width, MAX_TILE_WIDTH)} px wide (at most {MAX_TILES} tiles)", file=sys.stderr)
            save_contact_sheet(args.sheet, selected.tiles, [labels[p] for p in selected.tile_positions])
            print(f"wrote {args.sheet}")
        else:
            print("no frames: contact sheet not written", file=sys.stderr)
    return EXIT_OK
