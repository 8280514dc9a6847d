"""``kifaru.runs.journal``: the one rule for a folder an earlier run wrote into (detect's and predict's),
what differs named, and the count words of progress lines."""

from __future__ import annotations

import json

import pytest

from kifaru.exceptions import ConfigError
from kifaru.progress import format_duration, plural
from kifaru.runs.journal import ProgressLog, describe_differences, records_to_resume

HEADER = {"kind": 1, "video_loader_config": {"fps": 1.0, "detector": {"confidence": 0.25}}, "weights": "a" * 64}


def write_run(path, header, records):
    with ProgressLog(path, header) as log:
        for record in records:
            log.append(record)


def test_a_fresh_folder_has_nothing_to_resume(tmp_path):
    assert records_to_resume(tmp_path / "progress.jsonl", HEADER, outputs=[tmp_path / "out.csv"]) == []


def test_the_same_settings_continue_from_the_records_in_order(tmp_path):
    path = tmp_path / "progress.jsonl"
    write_run(path, HEADER, [{"filepath": "a"}, {"filepath": "b"}])
    (tmp_path / "out.csv").write_text("partial outputs of the interrupted run\n")
    assert records_to_resume(path, json.loads(json.dumps(HEADER)), outputs=[tmp_path / "out.csv"]) == [{"filepath": "a"}, {"filepath": "b"}]
    assert path.exists()


def test_other_settings_are_refused_naming_each_difference(tmp_path):
    path = tmp_path / "progress.jsonl"
    write_run(path, HEADER, [{"filepath": "a"}])
    now = {"kind": 1, "video_loader_config": {"fps": 2.0, "detector": {"confidence": 0.25, "nms": 0.5}}, "weights": "b" * 64}
    with pytest.raises(ConfigError) as refused:
        records_to_resume(path, now, overwrite_hint="--overwrite (overwrite: true)")
    assert str(refused.value) == (
        f"{tmp_path} holds the results of an earlier run made with other settings (video_loader_config.fps: 1.0 then, "
        "2.0 now; video_loader_config.detector.nms: not set then, 0.5 now; weights: aaaaaaaaaaaa... then, "
        "bbbbbbbbbbbb... now). Run with those settings to continue it, or pass --overwrite (overwrite: true) to start "
        "over (the earlier results are replaced), or choose another folder"
    )
    assert path.read_text().count("\n") == 2  # refused: nothing deleted


def test_overwrite_starts_over(tmp_path):
    path = tmp_path / "progress.jsonl"
    write_run(path, HEADER, [{"filepath": "a"}])
    (tmp_path / "out.csv").write_text("x\n")
    assert records_to_resume(path, {"other": True}, overwrite=True, outputs=[tmp_path / "out.csv"]) == []
    assert not path.exists()


def test_outputs_without_a_progress_file_are_refused(tmp_path):
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(ConfigError, match=rf"^{tmp_path} already holds b.json: pass --overwrite to start over"):
        records_to_resume(tmp_path / "progress.jsonl", HEADER, outputs=[tmp_path / "a.csv", tmp_path / "b.json"])


def test_a_header_torn_by_a_crash_is_no_earlier_run(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"kind": 1, "vid')
    assert records_to_resume(path, HEADER) == [] and not path.exists()
    # ... unless outputs say a run finished here.
    path.write_text('{"kind": 1, "vid')
    (tmp_path / "out.csv").write_text("x\n")
    with pytest.raises(ConfigError, match="already holds out.csv"):
        records_to_resume(path, HEADER, outputs=[tmp_path / "out.csv"])


def test_a_damaged_header_before_records_is_refused(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('not json\n{"filepath": "a"}\n{"filepath": "b"}\n')
    with pytest.raises(ConfigError, match="progress.jsonl of an earlier run is damaged .* its 2 results"):
        records_to_resume(path, HEADER)
    assert path.exists()


def test_describe_differences_compares_mappings_key_by_key():
    assert describe_differences({"a": {"b": [1, 2], "c": "x"}}, {"a": {"b": [1, 3], "c": "x"}}) == ["a.b: [1, 2] then, [1, 3] now"]
    assert describe_differences({"a": 1}, {"a": 1}) == []
    assert describe_differences({"a": None}, {}) == ["a: null then, not set now"]
    assert describe_differences({"a": {"b": 1}}, {"a": 2}) == ['a: {"b": 1} then, 2 now']


@pytest.mark.parametrize(
    ("count", "words", "expected"),
    [(0, ("file",), "0 files"), (1, ("file",), "1 file"), (2, ("frame",), "2 frames"), (1, ("process", "processes"), "1 process"), (3, ("process", "processes"), "3 processes")],
)
def test_plural(count, words, expected):
    assert plural(count, *words) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0 s"), (40, "40 s"), (89.4, "89 s"), (90, "2 min"), (12 * 60, "12 min"), (5399, "90 min"), (5400, "1.5 h"), (3.5 * 3600, "3.5 h"), (30 * 3600, "30.0 h")],
)
def test_format_duration_seconds_then_minutes_then_hours(seconds, expected):
    from kifaru.progress import format_duration

    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0 s"), (40.4, "40 s"), (89, "89 s"), (90, "2 min"), (600, "10 min"), (5399, "90 min"), (5400, "1.5 h"), (36000, "10.0 h")],
)
def test_format_duration_of_the_time_left(seconds, expected):
    assert format_duration(seconds) == expected
