"""Frame selection by detector scores: zamba's filter_frames, and what kifaru does where zamba fails.

The reference cases were made by zamba 2.7.2 itself on synthetic score arrays
(benchmarks/zamba_mdlite_reference.py, in zamba's own venv): tests/fixtures/zamba_mdlite/selection.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kifaru.video.selection import rank_by_score, select_by_scores

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "zamba_mdlite" / "selection.json").read_text())
ARRAYS = {array["id"]: np.array(array["scores"]) for array in FIXTURE["arrays"]}
CASES = [dict(zip(FIXTURE["case_fields"], row)) for row in FIXTURE["cases"]]


def _select(case):
    return select_by_scores(
        ARRAYS[case["array"]],
        confidence=case["confidence"],
        n_frames=case["n_frames"],
        fill_mode=case["fill_mode"],
        sort_by_time=case["sort_by_time"],
        seed=case["seed"],
    )


def _draw_depends_on_tie_order(case) -> bool:
    """zamba draws weighted frames in an order of equal scores that depends on numpy's build."""
    scores = ARRAYS[case["array"]]
    if case["fill_mode"] not in ("weighted_euclidean", "weighted_prob") or case["n_frames"] is None:
        return False
    if not 0 < case["n_above"] < case["n_frames"]:
        return False
    rest = scores[scores <= case["confidence"]]
    if case["fill_mode"] == "weighted_prob" and (rest > 0).any():
        rest = rest[rest > 0]  # frames of weight 0 are never drawn (unless all are 0: then uniformly)
    return len(np.unique(rest)) < len(rest)


AGREEING = [c for c in CASES if c["error"] is None and not _draw_depends_on_tie_order(c)]


def test_fixture_covers_every_fill_mode_with_filling():
    for mode in ("repeat", "score_sorted", "weighted_euclidean", "weighted_prob"):
        filled = [c for c in AGREEING if c["fill_mode"] == mode and c["n_frames"] and c["n_above"] < c["n_frames"]]
        assert len(filled) >= 25, mode


@pytest.mark.parametrize("case", AGREEING, ids=lambda c: f"{c['array']}-{c['fill_mode']}-{c['n_frames']}")
def test_same_frames_as_zamba(case):
    selected, note = _select(case)
    assert selected == case["selected"]
    assert note is None


def test_tied_scores_are_drawn_in_chronological_order():
    tied = [c for c in CASES if c["error"] is None and _draw_depends_on_tie_order(c)]
    assert tied, "the fixture should have weighted draws among equal scores"
    for case in tied:
        selected, _ = _select(case)
        assert len(selected) == len(case["selected"])
        assert selected[: case["n_above"]] == case["selected"][: case["n_above"]] or case["sort_by_time"]


def test_equal_scores_rank_earlier_frames_first():
    assert rank_by_score(np.array([0.5, 0.9, 0.5, 0.0, 0.9])).tolist() == [1, 4, 0, 2, 3]


@pytest.mark.parametrize("fill_mode", ["repeat", "weighted_euclidean"])
def test_modes_zamba_cannot_fill_from_nothing_fall_back_to_score_sorted(fill_mode):
    failing = [c for c in CASES if c["fill_mode"] == fill_mode and c["error"] and c["n_above"] == 0]
    assert failing
    for case in failing:
        selected, note = _select(case)
        expected, _ = _select({**case, "fill_mode": "score_sorted"})
        assert selected == expected
        assert "score_sorted" in note and fill_mode in note


def test_weighted_draw_of_more_frames_than_exist_takes_them_all():
    scores = np.array([0.9, 0.1, 0.3, 0.0])
    selected, note = select_by_scores(scores, confidence=0.25, n_frames=6, fill_mode="weighted_euclidean")
    assert selected == [0, 1, 2, 3]
    assert "only 4" in note


def test_weighted_prob_with_too_few_scored_frames_draws_the_rest_uniformly():
    failing = [c for c in CASES if c["error"] and "non-zero entries" in c["error"]]
    assert failing
    for case in failing:
        selected, note = _select(case)
        scores = ARRAYS[case["array"]]
        assert len(selected) == min(case["n_frames"], len(scores)) and len(set(selected)) == len(selected)
        assert set(np.flatnonzero(scores > 0)) <= set(selected)
        assert "uniformly" in note or "only" in note


def test_weighted_prob_with_nothing_above_keeps_nothing_as_zamba_does():
    selected, note = select_by_scores(np.array([0.1, 0.2, 0.0]), confidence=0.25, n_frames=2, fill_mode="weighted_prob")
    assert selected == [] and note is None


def test_sort_by_time_false_keeps_score_order_and_repeat_may_repeat():
    scores = np.array([0.3, 0.9, 0.0, 0.6])
    assert select_by_scores(scores, confidence=0.25, n_frames=2, fill_mode="repeat", sort_by_time=False)[0] == [1, 3]
    repeated, _ = select_by_scores(scores, confidence=0.25, n_frames=8, fill_mode="repeat")
    assert len(repeated) == 8 and set(repeated) <= {0, 1, 3} and repeated == sorted(repeated)


def test_no_n_frames_keeps_every_frame_above_the_threshold():
    scores = np.array([0.3, 0.25, 0.9, 0.0, 0.26])
    assert select_by_scores(scores, confidence=0.25, n_frames=None, fill_mode="repeat")[0] == [0, 2, 4]
