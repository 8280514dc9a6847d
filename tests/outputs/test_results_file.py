"""kifaru_results.jsonl: a run's records and what the run was, read back as they were written."""

from __future__ import annotations

from pathlib import Path

import pytest

from kifaru.exceptions import ConfigError
from kifaru.images.sequences import Grouping
from kifaru.outputs import RunDescription, get_writer
from kifaru.outputs.results_file import RESULTS_FILE, read_results, read_results_file
from kifaru.runs.records import MEDIA_IMAGE, STAGE_DECODE, Record


def test_records_and_the_run_come_back_as_written(tmp_path):
    records = [
        Record("a.mp4", fingerprint=[10, 20], frame_rate=4.0, frames=[{"frame_number": 0, "time": 0.0, "detections": [[0.1, 0.2, 0.3, 0.4, 0.9]]}],
               frames_used=[0], outputs={"probabilities": [0.2, 0.8]}, notes=["cut short"]),
        Record.failure("b.mp4", STAGE_DECODE, "cannot be opened"),
        Record("c.jpg", media=MEDIA_IMAGE, outputs={"taken": "2024-05-01T06:30:00", "crops": []}),
    ]  # fmt: skip
    run = RunDescription(
        "image predict", species=("blank", "deer"), model="m.ckpt", model_sha256="ab" * 32, threshold=0.3, root=tmp_path / "data",
        base=tmp_path, partial=(3, 5), detector={"name": "x", "detections_threshold": 0.3, "boxes_kept_down_to": 0.2},
        sequences=Grouping({"c.jpg": "cam/0001"}, ["c.jpg"], "by time"), aggregation="max",
    )  # fmt: skip
    (tmp_path / RESULTS_FILE).write_text(get_writer("results_jsonl").render(records, run))
    (back,) = read_results(tmp_path)
    assert back.records == records
    d = back.description
    assert (d.command, tuple(d.species), d.model, d.model_sha256, d.animal_threshold()) == ("image predict", ("blank", "deer"), "m.ckpt", "ab" * 32, 0.3)
    assert (d.root, d.base, d.partial, d.detector, d.aggregation) == (tmp_path / "data", tmp_path, (3, 5), run.detector, "max")
    assert (d.sequences.seq_ids, d.sequences.untimed, d.sequences.rule) == ({"c.jpg": "cam/0001"}, ["c.jpg"], "by time")
    assert back.kifaru_version and back.relative_name(str(tmp_path / "data" / "x" / "a.mp4")) == "x/a.mp4"


def test_the_root_of_a_run_without_one_is_the_folder_holding_every_file(tmp_path):
    records = [Record(str(tmp_path / "card" / "cam1" / "a.mp4")), Record(str(tmp_path / "card" / "cam2" / "b.mp4"))]
    (tmp_path / RESULTS_FILE).write_text(get_writer("results_jsonl").render(records, RunDescription("predict", base=tmp_path)))
    (back,) = read_results(tmp_path)
    assert back.root == tmp_path / "card"
    assert [back.relative_name(r.item) for r in records] == ["cam1/a.mp4", "cam2/b.mp4"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not a kifaru results file"),
        ('{"something": "else"}\n', "not a kifaru results file"),
        ('{"kifaru_results": 1, "command": "detect"}\n{"item": "a.mp4", "nonsense": \n', "line 2: not a record"),
    ],
)
def test_a_damaged_results_file_is_named_with_what_to_do(tmp_path, content, message):
    path = tmp_path / RESULTS_FILE
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as raised:
        read_results_file(path)
    assert str(path) in str(raised.value) and "run the command again" in str(raised.value)


def test_a_path_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        read_results(Path(tmp_path / "nothing"))
