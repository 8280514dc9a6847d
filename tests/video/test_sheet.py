"""Contact sheets: which frames a bounded sheet shows, and the size of its tiles."""

from __future__ import annotations

import numpy as np
import pytest

from kifaru.video.sheet import LABEL_HEIGHT, contact_sheet, evenly_chosen, tile_size, to_tile


@pytest.mark.parametrize("count", [65, 100, 900, 10_000])
def test_evenly_chosen_keeps_the_ends_and_spaces_the_rest_within_one(count):
    chosen = evenly_chosen(count, 64)
    assert len(chosen) == len(set(chosen)) == 64
    assert chosen[0] == 0 and chosen[-1] == count - 1
    gaps = np.diff(chosen)
    # Each position is rounded from k * step, so neighbouring gaps differ by at most one.
    assert gaps.max() - gaps.min() <= 1


def test_evenly_chosen_keeps_everything_up_to_the_limit():
    assert evenly_chosen(64, 64) == list(range(64))
    assert evenly_chosen(3, 64) == [0, 1, 2]
    assert evenly_chosen(0, 64) == []
    assert evenly_chosen(5, 1) == [0]


def test_tiles_are_shrunk_to_the_width_and_small_frames_kept():
    assert tile_size(1080, 1920) == (180, 320)
    assert tile_size(64, 96) == (64, 96)
    frame = np.full((1080, 1920, 3), 7, np.uint8)
    assert to_tile(frame).shape == (180, 320, 3)
    assert (to_tile(frame) == 7).all()  # a flat frame stays flat: bilinear averages equal values


def test_tiles_already_small_are_drawn_as_they_are():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 1080, 1920, 3), dtype=np.uint8)
    from_full = contact_sheet(frames, ["a", "b", "c"])
    from_tiles = contact_sheet([to_tile(frame) for frame in frames], ["a", "b", "c"])
    assert from_full.size == (3 * 320, 180 + LABEL_HEIGHT)
    assert np.array_equal(np.asarray(from_full), np.asarray(from_tiles))
