"""``kifaru.runs.predict``: every input file gets a prediction or a failure record, zamba's output
formats, and an interrupted run that resumes to the same CSV.

A tiny registered model (tests.models.tiny_model) stands in for zamba's networks: its outputs are a
known function of the frames, so each row can be checked against the frames kifaru loads for it.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from kifaru.config import PredictConfig, VideoLoaderConfig
from kifaru.exceptions import CheckpointError, ConfigError, Interrupted
from kifaru.runs.predict import (
    CONFIGURATION_YAML,
    FAILURES_CSV,
    PREDICTIONS_CSV,
    PROGRESS_FILE,
    PredictWarning,
    predict_model,
    predictions_csv,
    resolve_predict_run,
)

from kifaru.models.registry import TIME_DISTRIBUTED
from kifaru.outputs import RunDescription
from kifaru.runs.records import Record
from kifaru.models.weights import model_cache_dir
from kifaru.notices import listening
from kifaru.video import load_video_frames
from tests.media import index_frame, make_audio_only, make_clip
from tests.models.official_files import OFFICIAL_ROUTES, assert_first_use_notices, provide_official_checkpoint, tiny_checkpoint
from tests.models.tiny_model import LOADER_CONFIG, SPECIES, expected_probabilities, tiny_model, write_tiny_checkpoint

GOOD = ["a.mp4", "b.avi", "sub dir/c.mp4", "x.mp4/inside.mp4", "Taï d.MP4", "cut.avi"]
BAD = {  # name -> (stage, words its reason must have)
    "empty.mp4": ("decode", "empty"),
    "noise.mp4": ("decode", "cannot be opened"),
    "birdsong.mp4": ("decode", "no video stream"),
    "truncated.mp4": ("decode", "copied completely"),
    "._a.mp4": ("file", "macOS"),
}


def make_data(folder: Path) -> Path:
    """GOOD clips (each showing its own frame indices) and BAD inputs, plus files that are not videos."""
    for k, name in enumerate(GOOD[:-1]):
        make_clip(folder / name, n_frames=20 + 5 * k, frames=[index_frame(40 * k + i) for i in range(20 + 5 * k)])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    make_audio_only(folder / "birdsong.mp4")
    whole = (folder / "a.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 3])  # no moov atom: unreadable
    avi = (folder / "b.avi").read_bytes()
    (folder / "cut.avi").write_bytes(avi[: len(avi) * 6 // 10])  # its first 60% still decode
    (folder / "._a.mp4").write_bytes(b"\x00\x05\x16\x07" + bytes(200))  # macOS AppleDouble companion
    (folder / "notes.txt").write_text("field notes")
    (folder / ".Trashes").mkdir()
    make_clip(folder / ".Trashes" / "deleted.mp4")  # hidden folders are not searched
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("media") / "data")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt")


def run(data_dir: Path, checkpoint: Path, save_dir: Path, **options) -> object:
    options.setdefault("num_workers", 0)
    return predict_model(PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=save_dir, **options))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_row(path: Path) -> np.ndarray:
    frames = load_video_frames(path, VideoLoaderConfig(**LOADER_CONFIG))
    return expected_probabilities(tiny_model(), frames)


def test_every_file_gets_a_prediction_or_a_failure_with_its_reason(data_dir, checkpoint, tmp_path):
    report = run(data_dir, checkpoint, tmp_path / "out")
    predictions = read_csv(tmp_path / "out" / PREDICTIONS_CSV)
    failures = read_csv(tmp_path / "out" / FAILURES_CSV)

    # Files found in data_dir are written with their absolute path, as zamba writes them.
    assert sorted(row["filepath"] for row in predictions) == sorted(str((data_dir / n).resolve()) for n in GOOD)
    assert {Path(row["filepath"]).name: (row["stage"], row["reason"]) for row in failures}.keys() == BAD.keys()
    for row in failures:
        stage, words = BAD[Path(row["filepath"]).name]
        assert row["stage"] == stage and words in row["reason"], row
    assert len(report.records) == len(GOOD) + len(BAD)
    assert not (tmp_path / "out" / PROGRESS_FILE).exists()  # finished: nothing left to resume

    for row in predictions:
        assert list(row) == ["filepath", *SPECIES]
        expected = expected_row(Path(row["filepath"]))
        got = np.array([float(row[s]) for s in SPECIES])
        np.testing.assert_allclose(got, expected, atol=6e-6)  # 5 decimals
    # The rows are different clips with different predictions: a mix-up would show.
    assert len({row["elephant"] for row in predictions}) == len(GOOD)


def test_outputs_are_written_as_zamba_writes_them(data_dir, checkpoint, tmp_path):
    run(data_dir, checkpoint, tmp_path / "out")
    text = (tmp_path / "out" / PREDICTIONS_CSV).read_text(encoding="utf-8")
    header, *rows = text.splitlines()
    assert header == "filepath," + ",".join(SPECIES)
    assert text.endswith("\n") and "\r" not in text
    for row in rows:
        for value in row.rsplit(",", len(SPECIES))[1:]:
            # numpy's shortest float32 text after rounding to 5 places: "0.12346", "1e-05", "1.0"
            assert value == str(np.round(np.float32(value), 5))
            assert len(value.partition(".")[2]) <= 5 or "e" in value

    configuration = yaml.safe_load((tmp_path / "out" / CONFIGURATION_YAML).read_text())
    assert configuration["model_class"] == "TinyVideoNet"
    assert configuration["species"] == SPECIES
    assert configuration["predict_config"]["checkpoint"] == str(checkpoint)
    assert configuration["video_loader_config"]["total_frames"] == LOADER_CONFIG["total_frames"]
    assert "inference_start_time" in configuration
    # The values used, not the settings left out (zamba writes them so).
    assert configuration["predict_config"]["gpus"] == 0
    assert configuration["predict_config"]["model_cache_dir"] == str(model_cache_dir())


def test_configuration_records_the_detector_device_and_model_cache_used(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    loader = {**LOADER_CONFIG, "evenly_sample_total_frames": False, "megadetector_lite_config": {"confidence": 0.25, "n_frames": 4}}
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt", loader_config=loader)
    given = tmp_path / "given cache"
    run_config = resolve_predict_run(PredictConfig(data_dir=data_dir, checkpoint=checkpoint, model_cache_dir=given))
    assert run_config.predict_config.model_cache_dir == given
    assert run_config.predict_config.gpus == 0
    assert run_config.video_loader_config.megadetector_lite_config.device == "cpu"
    explicit = VideoLoaderConfig(**{**loader, "megadetector_lite_config": {**loader["megadetector_lite_config"], "device": "cuda:1"}})
    import kifaru.runtime.device

    # An explicit detector device is kept, on a machine that has it (checked: tests/runtime/test_device.py).
    monkeypatch.setattr(kifaru.runtime.device, "available_devices", lambda: ["cpu", "cuda:0", "cuda:1"])
    assert resolve_predict_run(PredictConfig(data_dir=data_dir, checkpoint=checkpoint), explicit).video_loader_config.megadetector_lite_config.device == "cuda:1"


def test_probability_threshold_and_class_names(data_dir, checkpoint, tmp_path):
    run(data_dir, checkpoint, tmp_path / "p")
    probabilities = {row["filepath"]: row for row in read_csv(tmp_path / "p" / PREDICTIONS_CSV)}

    run(data_dir, checkpoint, tmp_path / "t", proba_threshold=0.5)
    for row in read_csv(tmp_path / "t" / PREDICTIONS_CSV):
        assert {s: int(row[s]) for s in SPECIES} == {s: int(float(probabilities[row["filepath"]][s]) > 0.5) for s in SPECIES}

    run(data_dir, checkpoint, tmp_path / "c", output_class_names=True)
    rows = read_csv(tmp_path / "c" / PREDICTIONS_CSV)
    assert list(rows[0]) == ["filepath", "0"]
    for row in rows:
        best = max(SPECIES, key=lambda s: float(probabilities[row["filepath"]][s]))
        assert row["0"] == best

    with pytest.warns(PredictWarning, match="output_class_names is ignored"):
        run(data_dir, checkpoint, tmp_path / "both", proba_threshold=0.5, output_class_names=True)
    assert read_csv(tmp_path / "both" / PREDICTIONS_CSV) == read_csv(tmp_path / "t" / PREDICTIONS_CSV)


def test_filepaths_csv_relative_to_data_dir_duplicates_dropped_missing_recorded(data_dir, checkpoint, tmp_path):
    listing = tmp_path / "files.csv"
    listing.write_text("filepath,site\na.mp4,1\nx.mp4,1\nsub dir/c.mp4,2\na.mp4,1\ngone.mp4,3\n", encoding="utf-8")
    config = PredictConfig(data_dir=data_dir, filepaths=listing, checkpoint=checkpoint, save_dir=tmp_path / "out", num_workers=0)
    report = predict_model(config)
    assert report.run.duplicates == 1
    predictions = read_csv(tmp_path / "out" / PREDICTIONS_CSV)
    # As given, joined to data_dir, in the CSV's order.
    assert [row["filepath"] for row in predictions] == [str(data_dir / "a.mp4"), str(data_dir / "sub dir/c.mp4")]
    failures = {row["filepath"]: row for row in read_csv(tmp_path / "out" / FAILURES_CSV)}
    assert failures[str(data_dir / "x.mp4")]["reason"] == "a folder, not a video file"
    assert failures[str(data_dir / "gone.mp4")]["reason"] == "no such file"


def test_bad_runs_are_refused_before_any_clip_is_read(data_dir, checkpoint, tmp_path):
    listing = tmp_path / "files.csv"
    listing.write_text("filepath\nnope1.mp4\nnope2.mp4\n")
    with pytest.raises(ConfigError, match="none of its 2 files exist"):
        run(None, checkpoint, tmp_path / "o", filepaths=listing)
    with pytest.raises(ConfigError, match="needs a 'filepath' column"):
        (tmp_path / "bad.csv").write_text("path\na.mp4\n")
        run(data_dir, checkpoint, tmp_path / "o", filepaths=tmp_path / "bad.csv")
    empty = tmp_path / "no videos"
    empty.mkdir()
    (empty / "photo.jpg").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"no videos found.*holds 1 photos: classify them with `kifaru image predict --data-dir"):
        run(empty, checkpoint, tmp_path / "o")
    with pytest.raises(CheckpointError, match="no such file"):
        run(data_dir, tmp_path / "missing.ckpt", tmp_path / "o")
    with pytest.raises(ConfigError, match="gives 16 frames per video but the model takes 4"):
        config = PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=tmp_path / "o", num_workers=0)
        predict_model(config, VideoLoaderConfig(total_frames=16, evenly_sample_total_frames=True, ensure_total_frames=True))
    assert not (tmp_path / "o").exists()  # nothing written for a refused run


def test_existing_predictions_need_overwrite(data_dir, checkpoint, tmp_path):
    out = tmp_path / "out"
    run(data_dir, checkpoint, out)
    first = (out / PREDICTIONS_CSV).read_text()
    with pytest.raises(ConfigError, match="already holds zamba_predictions.csv.*overwrite"):
        run(data_dir, checkpoint, out)
    write_tiny_checkpoint(tmp_path / "other.ckpt", seed=5)
    run(data_dir, tmp_path / "other.ckpt", out, overwrite=True)
    assert (out / PREDICTIONS_CSV).read_text() != first
    # As zamba: the configuration file alone also marks an earlier run.
    (out / PREDICTIONS_CSV).unlink()
    with pytest.raises(ConfigError, match=f"already holds {CONFIGURATION_YAML}: pass --overwrite"):
        run(data_dir, checkpoint, out)


def test_dry_run_and_no_save_write_nothing(data_dir, checkpoint, tmp_path):
    report = run(data_dir, checkpoint, tmp_path / "dry", dry_run=True, batch_size=2)
    assert len(report.records) == 2 and not report.outputs
    assert not (tmp_path / "dry").exists()
    report = run(data_dir, checkpoint, tmp_path / "nosave", save=False)
    assert len(report.records) == len(GOOD) + len(BAD)
    assert not (tmp_path / "nosave").exists()
    assert report.predictions_csv().count("\n") == len(GOOD) + 1


class Stop(Exception):
    pass


def raise_after(count, error):
    """A progress callback that raises ``error`` once ``count`` files are done."""

    def progress(record, done, total):
        if done == count:
            raise error

    return progress


def test_an_interrupted_run_resumes_to_the_same_csv(data_dir, checkpoint, tmp_path):
    run(data_dir, checkpoint, tmp_path / "whole")
    out = tmp_path / "out"
    with pytest.raises(Stop):
        predict_model(PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0), progress=raise_after(4, Stop))
    assert not (out / PREDICTIONS_CSV).exists()
    lines = (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()
    # The header, then a line per finished file, but for the macOS companion file: it is skipped
    # unread (no fingerprint to check on a rerun), so it is not journaled but listed again.
    assert len(lines) == 1 + 3
    # A crash mid-write leaves a torn last line: it is ignored, and that file is done again.
    with open(out / PROGRESS_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"filepath": "/half')

    seen = []
    report = predict_model(
        PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0),
        progress=lambda record, done, total: seen.append(record.filepath),
    )
    assert report.resumed == 3  # the four minus the macOS file, which is listed again, not read
    assert len(seen) == len(set(seen)) == len(GOOD) + len(BAD)
    for name in (PREDICTIONS_CSV, FAILURES_CSV):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_an_interrupted_run_with_other_settings_is_refused_until_overwrite(data_dir, checkpoint, tmp_path):
    """detect's rule: continue with the same settings, refuse naming what differs, start over
    with overwrite; refused before any clip is read."""
    from kifaru.models.download import sha256_of

    out = tmp_path / "out"
    with pytest.raises(Stop):
        predict_model(
            PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0),
            progress=raise_after(3, Stop),
        )
    progress = (out / PROGRESS_FILE).read_text(encoding="utf-8")
    other = write_tiny_checkpoint(tmp_path / "other.ckpt", seed=5)
    then, now = sha256_of(checkpoint)[:12], sha256_of(other)[:12]
    with pytest.raises(ConfigError) as refused:
        resolve_predict_run(PredictConfig(data_dir=data_dir, checkpoint=other, save_dir=out))
    assert str(refused.value) == (
        f"{out} holds the results of an earlier run made with other settings (checkpoint_sha256: {then}... then, "
        f"{now}... now). Run with those settings to continue it, or pass --overwrite (overwrite: true) to start "
        "over (the earlier results are replaced), or choose another folder"
    )
    with pytest.raises(ConfigError, match=r"\(video_loader_config.crop_bottom_pixels: null then, 8 now\)"):
        predict_model(
            PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0),
            VideoLoaderConfig(**LOADER_CONFIG, crop_bottom_pixels=8),
        )
    assert (out / PROGRESS_FILE).read_text(encoding="utf-8") == progress  # refused: left as it was

    report = run(data_dir, other, out, overwrite=True)
    assert report.resumed == 0
    run(data_dir, other, tmp_path / "whole")
    assert (out / PREDICTIONS_CSV).read_text() == (tmp_path / "whole" / PREDICTIONS_CSV).read_text()


def test_overwrite_starts_an_interrupted_run_over(data_dir, checkpoint, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Stop):
        predict_model(
            PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0),
            progress=raise_after(3, Stop),
        )
    assert run(data_dir, checkpoint, out, overwrite=True).resumed == 0


def test_ctrl_c_writes_the_outputs_of_the_clips_finished(data_dir, checkpoint, tmp_path):
    run(data_dir, checkpoint, tmp_path / "whole")
    out = tmp_path / "out"
    with pytest.raises(Interrupted) as stopped:
        predict_model(PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0), progress=raise_after(4, KeyboardInterrupt))
    assert (stopped.value.done, stopped.value.total) == (4, len(GOOD) + len(BAD))
    assert set(stopped.value.outputs) == {"predictions", "failures", "results", "configuration"}
    finished = [json.loads(line)["item"] for line in (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()[1:]]
    # Journaled: the four but the macOS companion file (skipped unread: no fingerprint to check).
    assert len(finished) == 3
    # Only the four finished files, each row as the whole run writes it.
    whole = {row["filepath"]: row for name in (PREDICTIONS_CSV, FAILURES_CSV) for row in read_csv(tmp_path / "whole" / name)}
    partial = [row for name in (PREDICTIONS_CSV, FAILURES_CSV) for row in read_csv(out / name)]
    assert len(partial) == 4 and set(finished) < {row["filepath"] for row in partial}
    assert all(row == whole[row["filepath"]] for row in partial)
    # The progress file stays: the same run continues to the whole run's outputs.
    report = run(data_dir, checkpoint, out)
    assert report.resumed >= 3  # the four minus a macOS file, which is listed again, not read
    for name in (PREDICTIONS_CSV, FAILURES_CSV):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text()


KILLED_RUN = """
import sys
import time
from pathlib import Path
sys.path.insert(0, {root!r})
import tests.models.tiny_model  # registers the tiny model class
from kifaru.config import PredictConfig
from kifaru.runs.predict import predict_model

def hold_after_four(record, done, total):
    # Called once a record is in the progress file (fsynced): from the 4th on, the run stops here
    # and waits to be killed, so that it is killed at a known point on any machine.
    if done == 4:
        Path({marker!r}).write_text("4")
        time.sleep(600)


if __name__ == "__main__":
    config = PredictConfig(data_dir=Path({data!r}), checkpoint=Path({ckpt!r}), save_dir=Path({out!r}), num_workers={workers})
    predict_model(config, progress=hold_after_four)
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_killed_with_sigkill_resumes_without_duplicates(data_dir, checkpoint, tmp_path, workers):
    """kill -9 (as a power cut would): the progress file keeps what finished; the rerun does the rest.
    The run is killed while it waits after its 4th record (of 11), whatever the machine's speed."""
    run(data_dir, checkpoint, tmp_path / "whole")
    out = tmp_path / "out"
    script, marker = tmp_path / "predict_run.py", tmp_path / "four records written"
    root = str(Path(__file__).resolve().parents[2])
    script.write_text(KILLED_RUN.format(root=root, data=str(data_dir), ckpt=str(checkpoint), out=str(out), workers=workers, marker=str(marker)))
    process = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None and marker.exists(), "the run should be waiting after its 4th record"
    os.killpg(process.pid, signal.SIGKILL)  # the whole group: workers die too
    process.wait()
    assert not (out / PREDICTIONS_CSV).exists()
    records = (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()[1:]
    # Four finished, the macOS companion file (skipped unread) not journaled.
    assert len(records) == 3 and all(json.loads(line)["item"] for line in records)

    report = run(data_dir, checkpoint, out, num_workers=workers)
    assert report.resumed == 3  # the macOS file (recorded first) is listed again, not read
    assert len(report.records) == len(GOOD) + len(BAD)
    for name in (PREDICTIONS_CSV, FAILURES_CSV):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_worker_processes_give_the_same_outputs(data_dir, checkpoint, tmp_path):
    run(data_dir, checkpoint, tmp_path / "here")
    run(data_dir, checkpoint, tmp_path / "workers", num_workers=2, batch_size=3)
    for name in (PREDICTIONS_CSV, FAILURES_CSV):
        assert (tmp_path / "workers" / name).read_text() == (tmp_path / "here" / name).read_text()


UNGUARDED_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
import tests.models.tiny_model  # registers the tiny model class
from kifaru.config import PredictConfig
from kifaru.runs.predict import predict_model

report = predict_model(PredictConfig(data_dir=Path({data!r}), checkpoint=Path({ckpt!r}), save_dir=Path({out!r}), num_workers=2))
print("predicted", len(report.predicted))
"""


def test_a_script_without_a_main_guard_runs_with_worker_processes(data_dir, checkpoint, tmp_path):
    """The workers must not run the script again (spawn would): each would start a run of its own."""
    run(data_dir, checkpoint, tmp_path / "here")
    script = tmp_path / "script.py"
    root = str(Path(__file__).resolve().parents[2])
    script.write_text(UNGUARDED_RUN.format(root=root, data=str(data_dir), ckpt=str(checkpoint), out=str(tmp_path / "script")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("predicted") == 1
    for name in (PREDICTIONS_CSV, FAILURES_CSV):
        assert (tmp_path / "script" / name).read_text() == (tmp_path / "here" / name).read_text()


def test_a_checkpoint_checked_when_it_entered_the_cache_is_not_hashed_again(data_dir, tmp_path):
    from kifaru.models.download import sha256_of
    from kifaru.models.weights import _write_stamp

    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    config = PredictConfig(data_dir=data_dir, checkpoint=checkpoint)
    assert resolve_predict_run(config).checkpoint_sha256 == sha256_of(checkpoint)
    _write_stamp(checkpoint, "f" * 64)  # as the weights code stamps a checked official file
    assert resolve_predict_run(config).checkpoint_sha256 == "f" * 64
    write_tiny_checkpoint(checkpoint, seed=3)  # changed since: the stamp no longer applies
    assert resolve_predict_run(config).checkpoint_sha256 == sha256_of(checkpoint)


@pytest.mark.parametrize("route", OFFICIAL_ROUTES)
def test_the_official_model_is_found_with_the_default_region(new_user, tmp_path, route):
    """A PredictConfig with only data_dir: the default region (a plain "us" whatever route the
    checkpoint takes) and the default model, from the cache, the environment variable or the mirror."""
    data = tiny_checkpoint(tmp_path / "stand-in.ckpt", TIME_DISTRIBUTED)
    expected = provide_official_checkpoint(new_user, TIME_DISTRIBUTED, data, route)
    notices = []
    make_clip(new_user.work / "clips" / "a.mp4")
    config = PredictConfig(data_dir=new_user.work / "clips")
    assert config.weight_download_region == "us" and type(config.weight_download_region) is str
    with listening(notices.append):
        run = resolve_predict_run(config)
    assert_first_use_notices(notices, TIME_DISTRIBUTED, route, len(data))
    assert run.predict_config.checkpoint == expected and expected.read_bytes() == data
    assert run.species == list(TIME_DISTRIBUTED.species)
    notices.clear()
    with listening(notices.append):  # again: in the cache now, nothing to say
        resolve_predict_run(config)
    assert notices == []


# -- the writer, on chosen probabilities --------------------------------------------------------
# The tiny model's outputs on the test clips never put the last species first nor land exactly on
# a threshold; these probabilities do (all exact in float32, as the writer keeps them).

WRITER_SPECIES = ["antelope", "bird", "zebra"]
WRITER_RECORDS = [
    Record("first.mp4", outputs={"probabilities": [0.75, 0.125, 0.125]}),
    Record("middle.mp4", outputs={"probabilities": [0.25, 0.5, 0.25]}),
    Record("last.mp4", outputs={"probabilities": [0.0625, 0.125, 0.8125]}),
    Record("tied.mp4", outputs={"probabilities": [0.125, 0.4375, 0.4375]}),  # the first of the tied, as pandas' idxmax
]


def test_class_names_name_the_most_likely_species_the_last_included(tmp_path):
    config = PredictConfig(data_dir=tmp_path, output_class_names=True)
    text = predictions_csv(WRITER_RECORDS, RunDescription("predict", species=WRITER_SPECIES, predict_config=config))
    assert text == "filepath,0\nfirst.mp4,antelope\nmiddle.mp4,bird\nlast.mp4,zebra\ntied.mp4,bird\n"


def test_a_probability_at_the_threshold_is_not_above_it(tmp_path):
    """zamba writes ``preds > proba_threshold``: 0.25 and 0.5 exactly at the threshold are 0."""
    text = predictions_csv(WRITER_RECORDS, RunDescription("predict", species=WRITER_SPECIES, predict_config=PredictConfig(data_dir=tmp_path, proba_threshold=0.25)))
    assert text.splitlines() == [
        "filepath,antelope,bird,zebra",
        "first.mp4,1,0,0",
        "middle.mp4,0,1,0",
        "last.mp4,0,0,1",
        "tied.mp4,0,1,1",
    ]
    text = predictions_csv(WRITER_RECORDS, RunDescription("predict", species=WRITER_SPECIES, predict_config=PredictConfig(data_dir=tmp_path, proba_threshold=0.5)))
    assert [line.split(",", 1)[1] for line in text.splitlines()[1:]] == ["1,0,0", "0,0,0", "0,0,1", "0,0,0"]


def test_a_file_that_kills_its_worker_process_gets_a_failure_record_and_the_run_goes_on(checkpoint, tmp_path, monkeypatch):
    """With worker processes (the default): a file that crashes the decoder (here a stand-in that
    SIGKILLs the worker reading "crash.mp4", tests/runs/crashing.py) is recorded as a ``worker``
    failure; the other files, in flight with it or after it, get their predictions."""
    from kifaru.runs import backends
    from tests.runs.crashing import run_or_crash

    monkeypatch.setattr(backends, "_run_in_worker", run_or_crash)
    data = tmp_path / "data"
    names = ["a.mp4", "b.mp4", "crash.mp4", "c.mp4", "d.mp4"]
    for k, name in enumerate(names):
        make_clip(data / name, n_frames=20, frames=[index_frame(30 * k + i) for i in range(20)])
    report = run(data, checkpoint, tmp_path / "out", num_workers=2)
    failures = read_csv(tmp_path / "out" / FAILURES_CSV)
    assert [(Path(row["filepath"]).name, row["stage"]) for row in failures] == [("crash.mp4", "worker")]
    assert "worker process died" in failures[0]["reason"] and "SIGKILL" in failures[0]["reason"]
    predictions = {Path(row["filepath"]).name: row for row in read_csv(tmp_path / "out" / PREDICTIONS_CSV)}
    assert sorted(predictions) == sorted(set(names) - {"crash.mp4"})
    for name, row in predictions.items():
        np.testing.assert_allclose([float(row[s]) for s in SPECIES], expected_row(data / name), atol=6e-6)  # 5 decimals
    assert len(report.records) == len(names)


def test_predict_with_the_real_detector_in_worker_processes(megadetector_lite, checkpoint, tmp_path):
    """The production default: MegadetectorLite choosing the frames in worker processes. Each row
    is the model's output on the frames the detector picks in this process (the animal's)."""
    from kifaru.video.loader import FrameLoader
    from tests.media import make_animal_clip
    from tests.runs.test_backends import ANIMAL_CLIPS, DETECTOR_CONFIG

    data = tmp_path / "data"
    for name, (animal_at, _) in ANIMAL_CLIPS.items():
        make_animal_clip(data / name, animal_at)
    config = PredictConfig(data_dir=data, checkpoint=checkpoint, save_dir=tmp_path / "out", num_workers=2)
    report = predict_model(config, DETECTOR_CONFIG, output_formats=["csv", "megadetector", "segments"])
    assert len(report.predicted) == len(ANIMAL_CLIPS) and read_csv(tmp_path / "out" / FAILURES_CSV) == []
    # segments.csv: every frame the animal is drawn in lies in one of its clip's intervals.
    segments = read_csv(tmp_path / "out" / "segments.csv")
    for record in report.records:
        times = {f["frame_number"]: f["time"] for f in record.frames}
        spans = [(float(r["start_s"]), float(r["end_s"])) for r in segments if r["filepath"] == record.item]
        assert spans and all(any(a <= times[f] <= b for a, b in spans) for f in ANIMAL_CLIPS[Path(record.item).name][0]), record.item
    # The MegaDetector file: the detector's boxes on the animal's frames, each with the clip's species.
    from kifaru.runs.predict import MEGADETECTOR_JSON

    entries = {e["file"]: e for e in json.loads((tmp_path / "out" / MEGADETECTOR_JSON).read_text())["images"]}
    for record in report.records:
        name = Path(record.item).name
        entry, (animal_at, _) = entries[name], ANIMAL_CLIPS[name]
        assert set(animal_at) <= {d["frame_number"] for d in entry["detections"] if d["conf"] >= 0.25}, name
        assert entry["frames_processed"] == [f["frame_number"] for f in record.frames] and len(entry["frames_processed"]) >= 12
        top = max(range(len(SPECIES)), key=lambda i: record.probabilities[i])
        assert all(d["classifications"][0][0] == str(top) for d in entry["detections"])
    rows = {Path(row["filepath"]).name: row for row in read_csv(tmp_path / "out" / PREDICTIONS_CSV)}
    with FrameLoader(DETECTOR_CONFIG, detector=megadetector_lite) as here:
        for name, (_, selected) in ANIMAL_CLIPS.items():
            loaded = here.load(data / name)
            assert loaded.source_indices == selected
            expected = expected_probabilities(tiny_model(), loaded.frames)
            np.testing.assert_allclose([float(rows[name][s]) for s in SPECIES], expected, atol=6e-6)  # 5 decimals
    # Frames chosen without the detector give other rows: the comparison tells them apart.
    plain = DETECTOR_CONFIG.model_copy(update={"megadetector_lite_config": None})
    without = expected_probabilities(tiny_model(), load_video_frames(data / "three.mp4", plain))
    assert np.abs(without - [float(rows["three.mp4"][s]) for s in SPECIES]).max() > 1e-4


# -- MegaDetector batch output (Timelapse) ----------------------------------------------------------


def test_megadetector_output_has_every_file_relative_to_the_data_folder(data_dir, checkpoint, tmp_path):
    from kifaru.runs.predict import MEGADETECTOR_JSON

    report = predict_model(
        PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=tmp_path / "out", num_workers=0),
        output_formats=["csv", "megadetector"],
    )
    data = json.loads((tmp_path / "out" / MEGADETECTOR_JSON).read_text(encoding="utf-8"))
    entries = {entry["file"]: entry for entry in data["images"]}
    # Every input, relative to data_dir (zamba's CSV keeps its absolute paths), in the CSV's order.
    assert sorted(entries) == sorted(Path(r.item).relative_to(data_dir.resolve()).as_posix() for r in report.records)
    assert [row["filepath"] for row in read_csv(tmp_path / "out" / PREDICTIONS_CSV)] == [r.item for r in report.predicted]
    assert data["classification_categories"] == {str(i): s for i, s in enumerate(SPECIES)}
    for record in report.records:
        entry = entries[Path(record.item).relative_to(data_dir.resolve()).as_posix()]
        if record.failed:
            assert entry["detections"] is None and entry["failure"] == record.reason and entry["frame_rate"] == -1
        else:
            # No detector in this config: no boxes, and the frames the model saw.
            assert entry["detections"] == [] and entry["frames_processed"] == sorted(set(record.frames_used))
            assert entry["frame_rate"] > 0
    assert data["info"]["custom_metadata"]["paths_relative_to"] == str(data_dir.resolve())
    assert MEGADETECTOR_JSON in [p.name for p in report.outputs.values()]


def test_megadetector_output_with_a_filepaths_csv_and_relative_to(data_dir, checkpoint, tmp_path, monkeypatch):
    from kifaru.runs.predict import MEGADETECTOR_JSON

    monkeypatch.chdir(data_dir.parent)
    listed = tmp_path / "files.csv"
    listed.write_text(f"filepath\ndata/a.mp4\n{data_dir / 'sub dir' / 'c.mp4'}\n")
    config = PredictConfig(filepaths=listed, checkpoint=checkpoint, save_dir=tmp_path / "out", num_workers=0)
    predict_model(config, output_formats=["megadetector"], relative_to=Path("data"))
    data = json.loads((tmp_path / "out" / MEGADETECTOR_JSON).read_text(encoding="utf-8"))
    assert [entry["file"] for entry in data["images"]] == ["a.mp4", "sub dir/c.mp4"]
    assert not (tmp_path / "out" / PREDICTIONS_CSV).exists()  # only the formats asked for
    with pytest.raises(ConfigError, match=r"relative.to .*sub dir.*a.mp4 is not under it"):
        resolve_predict_run(config.model_copy(update={"overwrite": True}), output_formats=["megadetector"], relative_to=data_dir / "sub dir")
    with pytest.raises(ConfigError, match="output format 'timelapse': choose among csv, megadetector"):
        resolve_predict_run(config, output_formats=["timelapse"])


def test_each_clip_is_its_own_model_call_and_a_failing_one_costs_only_itself():
    """Batches follow the order in which clips finish loading; a clip alone gets the same bytes
    in every run, whichever clips were loaded beside it."""
    from kifaru.runs.predict import classify_batch

    class Network:
        def __init__(self):
            self.calls = []

        def predict_proba(self, clips):
            self.calls.append(len(clips))
            if np.isnan(clips[0]).any():
                raise ValueError("NaN frames")
            return np.full((len(clips), 3), 0.5)

    network = Network()
    clips = [np.zeros((4, 8, 8, 3)), np.full((4, 8, 8, 3), np.nan), np.zeros((4, 8, 8, 3))]
    results = classify_batch(network, clips)
    assert network.calls == [1, 1, 1]
    assert results[1] == "the model failed on its frames (ValueError: NaN frames)"
    assert all(np.array_equal(r, [0.5, 0.5, 0.5]) for r in (results[0], results[2]))
