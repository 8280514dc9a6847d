"""``kifaru.predict``: every input file gets a prediction or a failure record, zamba's output
formats, and an interrupted run that resumes to the same CSV.

A tiny registered model (tests.models.tiny_model) stands in for zamba's networks: its outputs are a
known function of the frames, so each row can be checked against the frames kifaru loads for it.
"""

from __future__ import annotations

import csv
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
from kifaru.exceptions import CheckpointError, ConfigError
from kifaru.predict import (
    CONFIGURATION_YAML,
    FAILURES_CSV,
    PREDICTIONS_CSV,
    PROGRESS_FILE,
    PredictWarning,
    predict_model,
    resolve_predict_run,
)

from kifaru.models.weights import model_cache_dir
from kifaru.video import load_video_frames
from tests.media import index_frame, make_audio_only, make_clip
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
    with pytest.raises(ConfigError, match="no videos found.*holds images"):
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


def test_an_interrupted_run_resumes_to_the_same_csv(data_dir, checkpoint, tmp_path):
    run(data_dir, checkpoint, tmp_path / "whole")
    out = tmp_path / "out"

    def stop_after_four(record, done, total):
        if done == 4:
            raise Stop

    with pytest.raises(Stop):
        predict_model(PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0), progress=stop_after_four)
    assert not (out / PREDICTIONS_CSV).exists()
    lines = (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 4  # the header, then one line per finished file
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


def test_a_resumed_run_with_other_settings_starts_over(data_dir, checkpoint, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Stop):
        predict_model(
            PredictConfig(data_dir=data_dir, checkpoint=checkpoint, save_dir=out, num_workers=0),
            progress=lambda record, done, total: (_ for _ in ()).throw(Stop) if done == 3 else None,
        )
    write_tiny_checkpoint(tmp_path / "other.ckpt", seed=5)
    report = run(data_dir, tmp_path / "other.ckpt", out)
    assert report.resumed == 0
    run(data_dir, tmp_path / "other.ckpt", tmp_path / "whole")
    assert (out / PREDICTIONS_CSV).read_text() == (tmp_path / "whole" / PREDICTIONS_CSV).read_text()


KILLED_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
import tests.models.tiny_model  # registers the tiny model class
from kifaru.config import PredictConfig
from kifaru.predict import predict_model

if __name__ == "__main__":
    config = PredictConfig(data_dir=Path({data!r}), checkpoint=Path({ckpt!r}), save_dir=Path({out!r}), num_workers={workers})
    predict_model(config)
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_killed_with_sigkill_resumes_without_duplicates(data_dir, checkpoint, tmp_path, workers):
    """kill -9 (as a power cut would): the progress file keeps what finished; the rerun does the rest."""
    run(data_dir, checkpoint, tmp_path / "whole")
    out = tmp_path / "out"
    script = tmp_path / "predict_run.py"
    root = str(Path(__file__).resolve().parents[1])
    script.write_text(KILLED_RUN.format(root=root, data=str(data_dir), ckpt=str(checkpoint), out=str(out), workers=workers))
    process = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    progress = out / PROGRESS_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if progress.exists() and progress.read_text(encoding="utf-8").count("\n") >= 4:
            break
        time.sleep(0.05)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: workers die too
    except ProcessLookupError:
        pass  # it ended first (a fast machine): checked just below
    process.wait()
    if (out / PREDICTIONS_CSV).exists():
        pytest.skip("the run finished before it could be killed")
    done_before = progress.read_text(encoding="utf-8").count("\n") - 1
    assert done_before >= 3

    report = run(data_dir, checkpoint, out, num_workers=workers)
    assert report.resumed >= done_before - 1  # the macOS file is listed again, not read
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
from kifaru.predict import predict_model

report = predict_model(PredictConfig(data_dir=Path({data!r}), checkpoint=Path({ckpt!r}), save_dir=Path({out!r}), num_workers=2))
print("predicted", len(report.predicted))
"""


def test_a_script_without_a_main_guard_runs_with_worker_processes(data_dir, checkpoint, tmp_path):
    """The workers must not run the script again (spawn would): each would start a run of its own."""
    run(data_dir, checkpoint, tmp_path / "here")
    script = tmp_path / "script.py"
    root = str(Path(__file__).resolve().parents[1])
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
