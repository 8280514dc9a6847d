"""zamba's official video models: their registry entries, and their checkpoints downloaded from
(a local stand-in for) DrivenData's buckets, checked against the S3 ETag and their structure,
resumed with If-Range, recorded in the cache and used offline. No test here reaches the network."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
import yaml

import kifaru.models.weights as weights
from kifaru.config import VideoLoaderConfig
from kifaru.config.run import OFFICIAL_VIDEO_MODELS, WeightRegion
from kifaru.exceptions import CheckpointError, ConfigError, DownloadError, IntegrityError, WeightsNotFoundError
from kifaru.models.official import default_model_name, list_video_models, official_checkpoint, video_model_entry
from kifaru.models.registry import EUROPEAN, SLOWFAST, TIME_DISTRIBUTED, S3Object
from kifaru.models.s3 import MODELS_URL_ENV, candidate_part_sizes, verify_s3_etag
from kifaru.models.weights import STRUCTURAL_CHECK, read_weights_record
from tests.models.official_files import (
    MIB,
    checkpoint_requests,
    md5_etag,
    multipart_etag,
    publish,
    tiny_checkpoint,
    use_mirror,
)

# zamba 2.7.2's own files for its official models (shipped: see the README there).
ZAMBA_OFFICIAL_MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "zamba_official_models"
FILE = EUROPEAN.weights_filename


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MODELS_URL_ENV, raising=False)
    for entry in list_video_models():
        monkeypatch.delenv(entry.weights_env_var, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def checkpoint(tmp_path) -> bytes:
    """A stand-in for european's checkpoint (right model_class and species)."""
    return tiny_checkpoint(tmp_path / "european.ckpt", EUROPEAN)


@pytest.fixture
def mirror(http_server, monkeypatch):
    use_mirror(http_server, monkeypatch)
    return http_server


@pytest.fixture
def hashes(monkeypatch) -> list[Path]:
    seen: list[Path] = []
    original = weights.sha256_of
    monkeypatch.setattr(weights, "sha256_of", lambda path: seen.append(Path(path)) or original(path))
    return seen


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) if cache.exists() else []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the registry ----------------------------------------------------------------------------------


def test_the_four_official_video_models():
    entries = {entry.name: entry for entry in list_video_models()}
    assert set(entries) == set(OFFICIAL_VIDEO_MODELS)  # the config's list of names agrees
    expected = {
        "time_distributed": ("TimeDistributedEfficientNet", 32, 16, "time_distributed_1d483fc723.ckpt"),
        "european": ("TimeDistributedEfficientNet", 11, 16, "european_0a80dc77bf.ckpt"),
        "blank_nonblank": ("TimeDistributedEfficientNet", 1, 16, "blank_nonblank_48f9e5a8fc.ckpt"),
        "slowfast": ("SlowFast", 32, 32, "slowfast_3c9d5d0c72.ckpt"),
    }
    for name, (model_class, species, frames, file) in expected.items():
        entry = video_model_entry(name)
        assert (entry.kind, entry.model_class, len(entry.species), entry.num_frames, entry.weights_filename) == (
            "video_classifier", model_class, species, frames, file,
        )  # fmt: skip
        assert entry.weights_sha256 is None and entry.weights_source == S3Object(f"zamba_official_models/{file}")
        assert entry.license == "MIT" and "DrivenData" in entry.credit
        assert entry.published_figures.startswith("zamba's published validation figures")
    assert TIME_DISTRIBUTED.species == SLOWFAST.species
    assert TIME_DISTRIBUTED.species[:3] == ("aardvark", "antelope_duiker", "badger") and TIME_DISTRIBUTED.species[-1] == "wild_dog_jackal"
    assert EUROPEAN.species[:2] == ("bird", "blank") and video_model_entry("blank_nonblank").species == ("blank",)
    assert "top-1 accuracy 0.811, macro-F1 0.442" in TIME_DISTRIBUTED.published_figures
    assert "accuracy 0.882, macro-F1 0.881" in video_model_entry("blank_nonblank").published_figures


def test_default_video_loader_configs():
    config = TIME_DISTRIBUTED.default_video_loader_config()
    assert isinstance(config, VideoLoaderConfig)
    assert (config.fps, config.total_frames, config.crop_bottom_pixels) == (4.0, 16, 50)
    assert (config.model_input_height, config.model_input_width) == (240, 426)
    detector = config.megadetector_lite_config
    assert (detector.image_height, detector.confidence, detector.nms_threshold, detector.fill_mode) == (640, 0.25, 0.45, "score_sorted")
    slowfast = SLOWFAST.default_video_loader_config()
    assert (slowfast.fps, slowfast.total_frames, slowfast.megadetector_lite_config.image_width) == (8.0, 32, 416)
    assert EUROPEAN.default_video_loader_config().megadetector_lite_config.image_width == 416
    # As written in zamba's config.yaml: frame_batch_size only where zamba writes it.
    assert [e.name for e in list_video_models() if "frame_batch_size" in e.video_loader_config["megadetector_lite_config"]] == [
        "blank_nonblank", "time_distributed",
    ]  # fmt: skip
    # A copy each time: changing it changes nothing in the registry.
    assert config is not TIME_DISTRIBUTED.default_video_loader_config()


@pytest.mark.parametrize("name", OFFICIAL_VIDEO_MODELS)
def test_loader_config_species_and_file_are_zambas(name):
    folder = ZAMBA_OFFICIAL_MODELS / name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
    entry = video_model_entry(name)
    assert dict(entry.video_loader_config) == config["video_loader_config"]
    assert dict(entry.train_config) == config["train_config"]
    assert entry.weights_filename == config["public_checkpoint"]
    assert list(entry.species) == hparams["species"] and entry.model_class == hparams["model_class"]


@pytest.mark.parametrize("name", OFFICIAL_VIDEO_MODELS)
def test_official_train_configs_are_valid_train_configs(name):
    from kifaru.config.run import TrainConfig

    config = TrainConfig.model_validate({**video_model_entry(name).train_config, "labels": "labels.csv"})
    assert config.model_name == name and config.backbone_finetune_config.backbone_initial_ratio_lr == 0.01
    assert config.early_stopping_config.monitor == "val_macro_f1"


def test_default_model_name_per_model_class():
    assert default_model_name("TimeDistributedEfficientNet") == "time_distributed"
    assert default_model_name("SlowFast") == "slowfast"
    assert default_model_name("ImageClassifier") is None


def test_video_model_entry_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown video model 'time_distributd' \(did you mean 'time_distributed'\?\); video models: blank_nonblank, european, slowfast, time_distributed"):
        video_model_entry("time_distributd")
    with pytest.raises(ConfigError, match="'megadetector_lite' is a detector, not a video model"):
        video_model_entry("megadetector_lite")


# -- where the files are ---------------------------------------------------------------------------


def test_region_urls_and_the_mirror(monkeypatch):
    source = EUROPEAN.weights_source
    assert source.url() == f"https://drivendata-public-assets.s3.amazonaws.com/zamba_official_models/{FILE}"
    assert source.in_region("eu").url() == f"https://drivendata-public-assets-eu.s3.amazonaws.com/zamba_official_models/{FILE}"
    assert source.in_region(WeightRegion.asia).url() == f"https://drivendata-public-assets-asia.s3.amazonaws.com/zamba_official_models/{FILE}"
    with pytest.raises(ConfigError, match="unknown weight download region 'europe'.*valid: us, eu, asia"):
        source.in_region("europe")
    monkeypatch.setenv(MODELS_URL_ENV, "http://mirror.example/zamba/")
    assert source.in_region("asia").url() == f"http://mirror.example/zamba/{FILE}"
    assert source.describe() == f"http://mirror.example/zamba/{FILE} (the mirror {MODELS_URL_ENV} names)"


def test_not_here_and_no_download_names_the_regions_url_and_the_alternatives(cache):
    with pytest.raises(WeightsNotFoundError) as caught:
        official_checkpoint("european", region="eu", download=False)
    message = str(caught.value)
    assert f"https://drivendata-public-assets-eu.s3.amazonaws.com/zamba_official_models/{FILE}" in message
    assert f"copy it to {cache / FILE}" in message
    assert "`kifaru models fetch european --weights FILE`" in message and "`--checkpoint FILE`" in message
    assert not cache.exists()


def test_no_network_says_what_to_do(cache, monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/models"
    monkeypatch.setenv(MODELS_URL_ENV, url)
    other = tmp_path / "elsewhere"
    with pytest.raises(DownloadError) as caught:
        official_checkpoint("european", cache_dir=other)
    message = str(caught.value)
    assert caught.value.url == f"{url}/{FILE}" and message.startswith(f"cannot download {url}/{FILE}: ")
    assert "refused" in message.lower()
    assert f"copy it to {other / FILE}" in message  # the cache the caller named, not MODEL_CACHE_DIR
    assert "`kifaru models fetch european --weights FILE`" in message and "`--checkpoint FILE`" in message
    assert leftovers(other) == [] and not (other / FILE).exists()


# -- downloading -----------------------------------------------------------------------------------


def test_download_checks_the_etag_and_records_it(cache, mirror, checkpoint, hashes):
    url = publish(mirror, EUROPEAN, checkpoint)
    progress = []
    path = official_checkpoint("european", progress=lambda done, total: progress.append((done, total)))
    assert path == cache / FILE and path.read_bytes() == checkpoint
    assert progress[-1] == (len(checkpoint), len(checkpoint))
    record = read_weights_record(path)
    assert record["url"] == url and record["etag"] == md5_etag(checkpoint) and record["size"] == len(checkpoint)
    assert record["sha256"] == hashlib.sha256(checkpoint).hexdigest()
    assert record["checked"] == "MD5 (S3 ETag) and checkpoint structure (model_class, species)"
    assert json.loads((cache / f"{FILE}.source.json").read_text()) == record
    assert sorted(p.name for p in cache.iterdir()) == [FILE, f"{FILE}.source.json", f"{FILE}.verified"]
    # Later uses: no request, no hashing (the stamp), and fine with the server gone (offline).
    hashes.clear()
    mirror.etags.clear()
    (mirror.root / "zamba_official_models" / FILE).unlink()
    assert official_checkpoint("european") == path and official_checkpoint("european", download=False) == path
    assert len(checkpoint_requests(mirror)) == 1 and hashes == []


def test_a_multipart_etag_of_other_part_sizes(cache, mirror, tmp_path):
    # 2.5 MiB in 1 MiB parts: 8 MiB is not consistent with 3 parts, so the other sizes are tried.
    data = tiny_checkpoint(tmp_path / "big.ckpt", EUROPEAN, padding=5 * MIB // 2)
    publish(mirror, EUROPEAN, data, etag=multipart_etag(data, MIB))
    path = official_checkpoint("european")
    assert read_weights_record(path)["checked"].startswith("multipart MD5 (S3 ETag, 1 MiB parts)")


def test_a_multipart_etag_of_8_mib_parts(tmp_path):
    data = bytes(range(256)) * (17 * MIB // 256)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert verify_s3_etag(path, multipart_etag(data, 8 * MIB), source="s3") == "multipart MD5 (S3 ETag, 8 MiB parts)"
    assert verify_s3_etag(path, md5_etag(data), source="s3") == "MD5 (S3 ETag)"
    with pytest.raises(IntegrityError) as caught:
        verify_s3_etag(path, multipart_etag(data[:-1] + b"!", 8 * MIB), source="https://bucket/f")
    message = str(caught.value)
    assert message.startswith(f"{path}: multipart MD5 (S3 ETag) is ") and "with 8 MiB parts" in message
    assert "https://bucket/f" in message and "--weights FILE" in message


def test_candidate_part_sizes():
    assert candidate_part_sizes(400 * MIB, 50) == [8 * MIB]
    assert candidate_part_sizes(400 * MIB, 25)[:2] == [16 * MIB]  # 16 is the only size giving 25 parts
    sizes = candidate_part_sizes(400 * MIB, 2)  # 200..399 MiB all give 2 parts
    assert sizes[:2] == [256 * MIB, 200 * MIB] and len(sizes) == 24
    assert candidate_part_sizes(10, 1) == [10] and candidate_part_sizes(3, 5) == []


def test_an_etag_mismatch_leaves_nothing_in_the_cache(cache, mirror, checkpoint):
    url = publish(mirror, EUROPEAN, checkpoint, etag=md5_etag(b"another file"))
    with pytest.raises(IntegrityError) as caught:
        official_checkpoint("european")
    message = str(caught.value)
    assert f"MD5 (S3 ETag) is {hashlib.md5(checkpoint).hexdigest()}, expected {hashlib.md5(b'another file').hexdigest()}" in message
    assert url in message
    assert not (cache / FILE).exists() and leftovers(cache) == []


def test_wrong_species_from_the_server_is_refused(cache, mirror, tmp_path):
    data = tiny_checkpoint(tmp_path / "x.ckpt", EUROPEAN, species=["cat", "dog"])
    url = publish(mirror, EUROPEAN, data)
    with pytest.raises(CheckpointError) as caught:
        official_checkpoint("european")
    message = str(caught.value)
    assert f"not zamba's official european checkpoint ({FILE}, downloaded from {url})" in message
    assert "its 2 species are not the 11 expected" in message and "unexpected cat, dog" in message
    assert not (cache / FILE).exists() and leftovers(cache) == []


def test_a_server_without_an_s3_etag_gets_the_structural_check(cache, mirror, checkpoint):
    publish(mirror, EUROPEAN, checkpoint, etag='"5f1a2b-1c"')  # nginx-style
    path = official_checkpoint("european")
    assert read_weights_record(path)["checked"].startswith("no checksum: the server's ETag (\"5f1a2b-1c\") is not an S3 MD5")


# -- resuming --------------------------------------------------------------------------------------


def test_a_cut_connection_resumes_under_if_range(cache, mirror, checkpoint):
    publish(mirror, EUROPEAN, checkpoint)
    mirror.cut_after, mirror.cut_times = 1000, 1
    with pytest.raises(DownloadError, match=f"after 1000 of {len(checkpoint)} bytes"):
        official_checkpoint("european")
    assert not (cache / FILE).exists()
    assert official_checkpoint("european").read_bytes() == checkpoint
    assert mirror.ranges() == [None, "bytes=1000-"]
    assert mirror.if_ranges() == [None, md5_etag(checkpoint)]
    assert leftovers(cache) == []


def test_a_file_changed_between_attempts_restarts_from_zero(cache, mirror, checkpoint, tmp_path):
    publish(mirror, EUROPEAN, checkpoint)
    mirror.cut_after, mirror.cut_times = 1000, 1
    with pytest.raises(DownloadError):
        official_checkpoint("european")
    newer = tiny_checkpoint(tmp_path / "newer.ckpt", EUROPEAN, seed=1)
    assert newer != checkpoint
    publish(mirror, EUROPEAN, newer)
    path = official_checkpoint("european")
    assert path.read_bytes() == newer and read_weights_record(path)["etag"] == md5_etag(newer)
    # The resume named the old ETag; the server answered with the whole new file.
    assert mirror.ranges() == [None, "bytes=1000-"] and mirror.if_ranges() == [None, md5_etag(checkpoint)]


def test_a_server_ignoring_if_range_cannot_mix_two_versions(cache, mirror, checkpoint, tmp_path):
    publish(mirror, EUROPEAN, checkpoint)
    mirror.cut_after, mirror.cut_times = 1000, 1
    with pytest.raises(DownloadError):
        official_checkpoint("european")
    newer = tiny_checkpoint(tmp_path / "newer.ckpt", EUROPEAN, seed=1)
    publish(mirror, EUROPEAN, newer)
    mirror.honour_if_range = False  # sends the range of the new file: its ETag gives it away
    assert official_checkpoint("european").read_bytes() == newer
    assert mirror.ranges() == [None, "bytes=1000-", None]


# -- files given by hand ---------------------------------------------------------------------------


def test_a_file_copied_into_the_cache_gets_the_structural_check(cache, checkpoint, hashes):
    cache.mkdir()
    (cache / FILE).write_bytes(checkpoint)
    assert official_checkpoint("european", download=False) == cache / FILE
    record = read_weights_record(cache / FILE)
    assert record["checked"] == STRUCTURAL_CHECK and record["source"] == "copied into the model cache by hand"
    hashes.clear()
    assert official_checkpoint("european", download=False) == cache / FILE and hashes == []  # stamped


def test_a_wrong_file_copied_into_the_cache_is_refused(cache, tmp_path):
    cache.mkdir()
    tiny_checkpoint(cache / FILE, EUROPEAN, model_class="SlowFast")
    with pytest.raises(CheckpointError) as caught:
        official_checkpoint("european", download=False)
    message = str(caught.value)
    assert str(cache / FILE) in message and "copied into the model cache by hand" in message
    assert "its model_class is SlowFast, expected TimeDistributedEfficientNet" in message
    assert "`--checkpoint FILE`" in message
    (cache / FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        official_checkpoint("european", download=False)


def test_the_environment_variable_gets_the_structural_check(cache, tmp_path, monkeypatch):
    mine = tmp_path / "mine" / "european.ckpt"
    mine.parent.mkdir()
    tiny_checkpoint(mine, EUROPEAN)
    monkeypatch.setenv(EUROPEAN.weights_env_var, str(mine))
    assert official_checkpoint("european") == mine
    assert sorted(p.name for p in mine.parent.iterdir()) == ["european.ckpt"]  # nothing beside a user's file
    tiny_checkpoint(mine, EUROPEAN, species=list(reversed(EUROPEAN.species)))
    with pytest.raises(CheckpointError, match="the 11 expected species in another order") as caught:
        official_checkpoint("european")
    assert str(mine) in str(caught.value) and "given by hand" in str(caught.value)


def test_a_cached_file_that_changed_after_its_download_is_an_integrity_error(cache, mirror, checkpoint):
    publish(mirror, EUROPEAN, checkpoint)
    path = official_checkpoint("european")
    path.write_bytes(checkpoint[:-10])
    with pytest.raises(IntegrityError) as caught:
        official_checkpoint("european")
    message = str(caught.value)
    assert f"expected {hashlib.sha256(checkpoint).hexdigest()}" in message
    assert "changed since it entered the model cache" in message and "MD5 (S3 ETag)" in message
    # Fetching replaces it (one more download).
    assert weights.fetch_weights(EUROPEAN).read_bytes() == checkpoint
    assert len(checkpoint_requests(mirror)) == 2
