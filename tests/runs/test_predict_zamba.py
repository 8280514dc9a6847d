"""``kifaru predict`` against zamba 2.7.2's ``zamba predict`` on the same real clips and weights.

zamba's outputs (tests/fixtures/zamba_predict, made by benchmarks/zamba_predict_reference.py in
zamba's venv) come from the seed-1 random time_distributed checkpoint and zamba's default
time_distributed config (MegadetectorLite, 16 frames). Here kifaru builds the same checkpoint
(tests/models/random_checkpoint.py) and predicts the same clips, listed in the same filepaths CSV
relative to the same data root; every probability must be within 0.02 of zamba's.

The real EfficientNet and detector run on the CPU (about a minute on 2 cores once the ONNX exports
below are cached, 2.5 minutes without them), so each kifaru run is done once per module: one on the five clips (its records also give the
proba_threshold and output_class_names variants, through the writer ``predict_model`` uses) and
one on the broken-files set. Skipped without ../shared/data or the MegadetectorLite weights.

The ONNX exports of the networks (made once per checkpoint, ~30 s for the classifier) are kept in
pytest's cache folder (.pytest_cache/d/kifaru_zamba_predict; ``pytest --cache-clear`` starts
afresh), so that later runs skip them and the user's model cache is not touched.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import SHARED_DATA
from tests.media import write_filepaths
from tests.models.random_checkpoint import write_random_time_distributed

pytestmark = pytest.mark.shared_data

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "zamba_predict"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
CLIPS = [clip["filepath"] for clip in MANIFEST["clips"]]
BROKEN = MANIFEST["runs"]["broken_files"]
TOLERANCE = 0.02  # the requirement, on every probability
MODEL_CLASS = "TimeDistributedEfficientNet"
WEIGHT_SEED = MANIFEST["checkpoint"]["weight_seed"]
# kifaru's failure record for each broken file: (stage, words its reason must have).
BROKEN_FAILURES = {
    "audio_only.mp4": ("decode", "no video stream"),
    "not_a_video.mp4": ("decode", "cannot be opened"),
    "missing.mp4": ("file", "no such file"),
}


@dataclass
class Runs:
    data_root: Path
    checkpoint: Path
    model_cache: Path
    species: list[str]
    main: Any  # PredictReport
    main_dir: Path
    started: datetime  # UTC, naive, as zamba's inference_start_time
    broken: Any
    broken_data: Path
    broken_dir: Path


def _skip_without_real_inputs() -> Path:
    """The conditions of conftest's ``shared_data`` and ``megadetector_lite`` fixtures (without
    loading the detector): the real clips and the detector weights must be on this machine."""
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import locate_weights

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real media not available at {SHARED_DATA}")
    missing = [clip for clip in CLIPS if not (SHARED_DATA / clip).is_file()]
    if missing:
        pytest.skip(f"clips of the zamba fixture missing under {SHARED_DATA}: {missing}")
    location = locate_weights(MEGADETECTOR_LITE)
    if location is None or not location.path.is_file():
        pytest.skip("MegadetectorLite weights are not here; `kifaru models fetch megadetector_lite` gets them")
    return location.path


def _model_cache(request, tmp_path_factory) -> Path:
    """pytest's cache folder when the cache plugin is on (exports kept between runs), else tmp."""
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("kifaru_zamba_predict") if cache is not None else tmp_path_factory.mktemp("model_cache")


def _drop_stale_exports(model_cache: Path, checkpoint_sha256: str) -> None:
    """Exports of earlier test checkpoints (if write_checkpoint's bytes change) are 200 MB each."""
    for path in (model_cache / "onnx").glob("time_distributed-*"):
        if not path.name.startswith(f"time_distributed-{checkpoint_sha256[:16]}"):
            path.unlink(missing_ok=True)


def _make_broken_data(folder: Path, data_root: Path) -> Path:
    """The broken_files run's data dir (manifest.json runs.broken_files.files)."""
    from tests.media import make_audio_only

    folder.mkdir()
    good = next(clip for clip in CLIPS if clip.endswith("/" + BROKEN["filepaths"][0]))
    shutil.copyfile(data_root / good, folder / BROKEN["filepaths"][0])
    make_audio_only(folder / "audio_only.mp4", seconds=2.0)  # an aac stream, no video
    (folder / "not_a_video.mp4").write_text("not a video\n")
    assert not (folder / "missing.mp4").exists()
    return folder


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> Runs:
    detector_weights = _skip_without_real_inputs()
    from kifaru.config import PredictConfig
    from kifaru.models.download import sha256_of
    from kifaru.models.official import video_model_entry
    from kifaru.runs.predict import predict_model

    entry = video_model_entry("time_distributed")
    species = list(entry.species)
    tmp = tmp_path_factory.mktemp("zamba_predict")
    checkpoint = write_random_time_distributed(tmp / "time_distributed_random.ckpt", species, WEIGHT_SEED)
    model_cache = _model_cache(request, tmp_path_factory)
    _drop_stale_exports(model_cache, sha256_of(checkpoint))
    data_root = SHARED_DATA.resolve()  # zamba was given the resolved root: {DATA_ROOT}
    broken_data = _make_broken_data(tmp / "broken_data", data_root)

    with pytest.MonkeyPatch.context() as env:
        env.delenv("VIDEO_CACHE_DIR", raising=False)  # zamba's default run had no video cache
        env.setenv("MODEL_CACHE_DIR", str(model_cache))
        env.setenv("KIFARU_MEGADETECTOR_LITE_WEIGHTS", str(detector_weights))

        def predict(data_dir: Path, filepaths: list[str], name: str) -> tuple[Any, Path]:
            save_dir = tmp / f"out_{name}"
            config = PredictConfig(
                data_dir=data_dir,
                filepaths=write_filepaths(tmp / f"{name}_filepaths.csv", filepaths),
                checkpoint=checkpoint,
                save_dir=save_dir,
                num_workers=0,  # 2 cores: a worker process only adds its start-up
            )
            # No video_loader_config: as zamba, the checkpoint's family's default (checked below).
            return predict_model(config), save_dir

        started = datetime.now(timezone.utc).replace(tzinfo=None)
        main, main_dir = predict(data_root, CLIPS, "default")
        broken, broken_dir = predict(broken_data, BROKEN["filepaths"], "broken_files")
    return Runs(data_root, checkpoint, model_cache, species, main, main_dir, started, broken, broken_data, broken_dir)


# -- helpers ----------------------------------------------------------------------------------


def _fixture_text(name: str, **paths: Path) -> str:
    text = (FIXTURE / name).read_text(encoding="utf-8")
    for placeholder, path in paths.items():
        text = text.replace("{" + placeholder + "}", str(path))
    return text


def _rows(text: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, rows


def _probabilities(rows: list[list[str]]) -> dict[str, np.ndarray]:
    return {row[0]: np.array([float(v) for v in row[1:]]) for row in rows}


def _zamba(runs: Runs, name: str) -> str:
    return _fixture_text(name, DATA_ROOT=runs.data_root)


def _kifaru_variant(runs: Runs, **options: Any) -> str:
    """The CSV kifaru's ``predict_model`` writes for these records with these output options."""
    from dataclasses import replace

    from kifaru.outputs.zamba_csv import predictions_csv

    config = runs.main.run.predict_config.model_copy(update=options)
    return predictions_csv(runs.main.records, replace(runs.main.run.description(), predict_config=config))


def _key_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if not isinstance(value, dict):
        return []
    out = []
    for key, inner in value.items():
        out.append(prefix + (key,))
        out.extend(_key_paths(inner, prefix + (key,)))
    return out


def _zamba_configuration(runs: Runs) -> dict:
    text = _fixture_text(
        "predict_configuration.yaml",
        CHECKPOINT=runs.checkpoint,
        DATA_ROOT=runs.data_root,
        SAVE_DIR=runs.main_dir,
        MODEL_CACHE_DIR=runs.model_cache,
    )
    return yaml.safe_load(text)


def _kifaru_configuration(runs: Runs) -> dict:
    from kifaru.runs.predict import CONFIGURATION_YAML

    return yaml.safe_load((runs.main_dir / CONFIGURATION_YAML).read_text(encoding="utf-8"))


# -- the default run ----------------------------------------------------------------------------


def test_every_clip_predicted_with_zambas_default_loader_config(runs):
    from kifaru.models.official import video_model_entry

    assert [r.filepath for r in runs.main.records] == [str(runs.data_root / clip) for clip in CLIPS]
    assert not runs.main.failed, [(r.filepath, r.stage, r.reason) for r in runs.main.failed]
    default = video_model_entry("time_distributed").default_video_loader_config()
    detector = default.megadetector_lite_config.model_copy(update={"device": runs.main.run.device})
    assert runs.main.run.video_loader_config == default.model_copy(update={"megadetector_lite_config": detector})
    assert runs.main.run.checkpoint.model_class == MODEL_CLASS and runs.main.run.species == runs.species


def test_predictions_csv_same_header_rows_and_probabilities_as_zambas(runs):
    from kifaru.runs.predict import FAILURES_CSV, PREDICTIONS_CSV

    ours_text = (runs.main_dir / PREDICTIONS_CSV).read_text(encoding="utf-8")
    zamba_text = _zamba(runs, "zamba_predictions.csv")
    assert ours_text == runs.main.predictions_csv()  # the writer the variants below use
    assert ours_text.endswith("\n") and "\r" not in ours_text

    assert ours_text.splitlines()[0] == zamba_text.splitlines()[0]  # same columns, same order
    our_header, our_rows = _rows(ours_text)
    zamba_header, zamba_rows = _rows(zamba_text)
    assert our_header == zamba_header == ["filepath", *runs.species]
    assert [row[0] for row in our_rows] == [row[0] for row in zamba_rows]

    ours, zambas = _probabilities(our_rows), _probabilities(zamba_rows)
    differences = {Path(path).name: float(np.abs(ours[path] - zambas[path]).max()) for path in zambas}
    print(f"max |kifaru - zamba| per clip: {differences}; byte-identical CSV: {ours_text == zamba_text}")
    worst = max(differences, key=differences.get)
    assert max(differences.values()) <= TOLERANCE, (
        f"max probability difference {differences[worst]:.5f} ({worst}) > {TOLERANCE}; per clip: {differences}"
    )
    # The clips give different rows: a mix-up of rows would show.
    assert len({tuple(p) for p in ours.values()}) == len(CLIPS)

    assert (runs.main_dir / FAILURES_CSV).read_text(encoding="utf-8") == "filepath,stage,reason\n"


def test_proba_threshold_variant_as_zambas(runs):
    ours_text = _kifaru_variant(runs, proba_threshold=0.5)
    zamba_text = _zamba(runs, "zamba_predictions_proba_threshold_0.5.csv")
    assert ours_text.splitlines()[0] == zamba_text.splitlines()[0]
    (our_header, our_rows), (_, zamba_rows) = _rows(ours_text), _rows(zamba_text)
    assert [row[0] for row in our_rows] == [row[0] for row in zamba_rows]

    our_p = {r.filepath: np.asarray(r.probabilities) for r in runs.main.predicted}
    zamba_p = _probabilities(_rows(_zamba(runs, "zamba_predictions.csv"))[1])
    compared, mismatches = 0, []
    for ours, zambas in zip(our_rows, zamba_rows):
        path = ours[0]
        for k, species in enumerate(our_header[1:]):
            assert ours[k + 1] in ("0", "1") and zambas[k + 1] in ("0", "1")
            if min(abs(our_p[path][k] - 0.5), abs(zamba_p[path][k] - 0.5)) <= TOLERANCE:
                continue  # either side may fall on either side of 0.5
            compared += 1
            if ours[k + 1] != zambas[k + 1]:
                mismatches.append((Path(path).name, species, ours[k + 1], zambas[k + 1], float(our_p[path][k])))
    assert not mismatches, f"0/1 differs from zamba's away from the threshold: {mismatches}"
    assert compared >= len(CLIPS) * len(runs.species) // 2, f"only {compared} cells compared"


def test_output_class_names_variant_as_zambas(runs):
    ours_text = _kifaru_variant(runs, output_class_names=True)
    zamba_text = _zamba(runs, "zamba_predictions_output_class_names.csv")
    (our_header, our_rows), (zamba_header, zamba_rows) = _rows(ours_text), _rows(zamba_text)
    assert our_header == zamba_header == ["filepath", "0"]
    assert [row[0] for row in our_rows] == [row[0] for row in zamba_rows]

    zamba_p = _probabilities(_rows(_zamba(runs, "zamba_predictions.csv"))[1])
    compared = 0
    for (path, ours), (_, zambas) in zip(our_rows, zamba_rows):
        top_two = np.sort(zamba_p[path])[-2:]
        if top_two[1] - top_two[0] <= TOLERANCE:
            continue
        compared += 1
        assert ours == zambas, f"{path}: kifaru says {ours}, zamba {zambas}"
    assert compared == len(CLIPS)  # no near tie in zamba's outputs for these clips


def test_configuration_yaml_has_zambas_keys_and_structure(runs):
    from kifaru.runs.predict import KIFARU_CONFIGURATION_KEYS

    ours, zambas = _kifaru_configuration(runs), _zamba_configuration(runs)
    assert ours.pop(KIFARU_CONFIGURATION_KEYS[0]) == "onnxruntime"  # kifaru's own addition: the classifier's runtime
    assert KIFARU_CONFIGURATION_KEYS[1] not in ours  # no fallback
    our_keys, zamba_keys = _key_paths(ours), _key_paths(zambas)
    missing = [".".join(k) for k in zamba_keys if k not in our_keys]
    extra = [".".join(k) for k in our_keys if k not in zamba_keys]
    assert not missing, f"zamba's keys that kifaru's predict_configuration.yaml lacks: {missing}"
    assert not extra, f"keys zamba does not write: {extra}"
    assert our_keys == zamba_keys  # the same order too
    for key in ("predict_config", "video_loader_config"):
        assert isinstance(ours[key], dict)
    assert ours["model_class"] == zambas["model_class"] == MODEL_CLASS
    assert ours["species"] == zambas["species"] == runs.species


# Values zamba resolves before writing them: the GPU count, the model cache dir, the detector device.
RESOLVED = {("predict_config", "gpus"), ("predict_config", "model_cache_dir"),
            ("video_loader_config", "megadetector_lite_config", "device")}
PER_RUN = {("predict_config", "num_workers")}  # zamba's run used its default 3 workers; here 0


def _leaves(value: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    return {k: v for key, inner in value.items() for k, v in _leaves(inner, prefix + (key,)).items()}


def test_configuration_yaml_values_as_zambas(runs):
    ours, zambas = _leaves(_kifaru_configuration(runs)), _leaves(_zamba_configuration(runs))
    start = ours.pop(("inference_start_time",))
    zambas.pop(("inference_start_time",))
    differences = {
        ".".join(k): (ours.get(k), v) for k, v in zambas.items() if k not in RESOLVED | PER_RUN and ours.get(k) != v
    }
    assert not differences, f"(kifaru, zamba) values that differ: {differences}"
    assert ours[("predict_config", "num_workers")] == 0
    # zamba's: datetime.utcnow().isoformat()
    assert runs.started <= datetime.fromisoformat(start) <= datetime.now(timezone.utc).replace(tzinfo=None)


def test_configuration_yaml_records_resolved_values_as_zamba_does(runs):
    import torch

    from kifaru.models.weights import model_cache_dir

    ours = _leaves(_kifaru_configuration(runs))
    gpus = min(torch.cuda.device_count(), 1)  # zamba writes every GPU here; kifaru predicts on one
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODEL_CACHE_DIR", str(runs.model_cache))
        cache = str(model_cache_dir())
    # What zamba 2.7.2 writes on this machine for the same run.
    expected = {
        ("predict_config", "gpus"): gpus,
        ("predict_config", "model_cache_dir"): cache,
        ("video_loader_config", "megadetector_lite_config", "device"): "cuda" if gpus else "cpu",
    }
    got = {k: ours.get(k) for k in expected}
    assert got == expected, {".".join(k): (got[k], v) for k, v in expected.items() if got[k] != v}


# -- broken files -------------------------------------------------------------------------------


def test_broken_files_get_failure_records_not_rows_predicted_from_zeros(runs):
    """zamba drops the missing file and the one ffprobe rejects (a log warning only) and predicts
    the audio-only file from frames of zeros; kifaru records each with its stage and reason."""
    from kifaru.runs.predict import FAILURES_CSV, PREDICTIONS_CSV

    good, *broken = BROKEN["filepaths"]
    path = lambda name: str(runs.broken_data / name)  # noqa: E731
    assert [r.filepath for r in runs.broken.records] == [path(name) for name in BROKEN["filepaths"]]

    zamba_header, zamba_rows = _rows(_fixture_text("zamba_predictions_broken_files.csv", BROKEN_DIR=runs.broken_data))
    # zamba's flaw, as the fixture records it: a row for the file it could not read.
    assert [row[0] for row in zamba_rows] == [path(good), path("audio_only.mp4")]

    our_header, our_rows = _rows((runs.broken_dir / PREDICTIONS_CSV).read_text(encoding="utf-8"))
    assert our_header == zamba_header
    assert [row[0] for row in our_rows] == [path(good)]  # the good file keeps its row
    difference = float(np.abs(_probabilities(our_rows)[path(good)] - _probabilities(zamba_rows)[path(good)]).max())
    assert difference <= TOLERANCE, f"{good}: max probability difference {difference:.5f} > {TOLERANCE}"

    with open(runs.broken_dir / FAILURES_CSV, newline="", encoding="utf-8") as handle:
        failures = list(csv.DictReader(handle))
    assert [row["filepath"] for row in failures] == [path(name) for name in broken]  # input order
    for row in failures:
        stage, words = BROKEN_FAILURES[Path(row["filepath"]).name]
        assert row["stage"] == stage and words in row["reason"].lower(), row
