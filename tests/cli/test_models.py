"""``kifaru models list`` and ``kifaru models fetch``, against a model cache in tmp_path and a
local package index (no network)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.models import registry
from kifaru.models.registry import EUROPEAN, MEGADETECTOR_LITE, list_models, list_video_models
from kifaru.models.s3 import MODELS_URL_ENV
from tests.models.local_index import make_wheel, publish_wheel, sha256, wheel_requests
from tests.models.official_files import checkpoint_requests, publish, tiny_checkpoint, use_mirror

WEIGHTS_NAME = MEGADETECTOR_LITE.weights_filename
MEMBER = MEGADETECTOR_LITE.weights_source.member
FAKE_WEIGHTS = b"stand-in for yolox_tiny_640_20220528.pth " * 100


@pytest.fixture(autouse=True)
def cache(request, tmp_path, monkeypatch):
    if "new_user" in request.fixturenames:
        return None  # the new user's own empty cache, and weights served as a user gets them
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MEGADETECTOR_LITE.weights_env_var, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens: never PyPI
    return tmp_path / "cache"


@pytest.fixture
def fake_sha(monkeypatch):
    """MegadetectorLite's registry entry with the sha256 of FAKE_WEIGHTS (the real file's cannot
    be reproduced), wherever the CLI looks it up."""
    entry = dataclasses.replace(MEGADETECTOR_LITE, weights_sha256=sha256(FAKE_WEIGHTS))
    monkeypatch.setitem(registry._REGISTRY, entry.name, entry)
    monkeypatch.setattr(registry, "MEGADETECTOR_LITE", entry)
    return entry


def test_list_shows_every_model_with_its_license_and_whether_it_is_here(cache, capsys):
    assert main(["models", "list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"model cache: {cache} (set MODEL_CACHE_DIR to move it)" in out
    for entry in list_models():
        assert f"{entry.name} [{entry.kind}]: {entry.description}" in out
        assert f"license: {entry.license}; {entry.credit}" in out
        if entry.weights_sha256 is not None:
            assert f"weights: {entry.weights_filename}, sha256 {entry.weights_sha256[:16]}..." in out
        else:
            assert f"weights: {entry.weights_filename}, checked against its S3 ETag (MD5), model class and species" in out
        option = {
            "video_classifier": "--checkpoint FILE to predict or train",
            "image_classifier": "--checkpoint FILE to image predict",
            "detector": "--weights FILE to detect",
        }[entry.kind]
        assert f"offline: `kifaru models fetch {entry.name} --weights FILE` imports a copy; or set {entry.weights_env_var}; or pass {option}" in out
    assert "zamba==2.7.2 wheel on the package index" in out
    assert "here:    not cached (fetched on first use)" in out
    assert "MIT" in out and "DrivenData" in out


def test_list_shows_the_cached_copy_or_the_environment_variable(cache, tmp_path, capsys, monkeypatch):
    cache.mkdir()
    (cache / WEIGHTS_NAME).write_bytes(b"whatever")  # listing does not check the file
    assert main(["models", "list"]) == EXIT_OK
    out = capsys.readouterr().out
    megadetector = out[out.index("megadetector_lite [detector]"):].split("\n\n")[0]
    assert f"here:    {cache / WEIGHTS_NAME} (cache)" in megadetector and "not cached" not in megadetector
    monkeypatch.setenv(MEGADETECTOR_LITE.weights_env_var, str(tmp_path / "shared.pth"))
    assert main(["models", "list"]) == EXIT_OK
    assert f"here:    {tmp_path / 'shared.pth'} (env {MEGADETECTOR_LITE.weights_env_var})" in capsys.readouterr().out


def test_fetch_with_a_wrong_local_file_fails_with_an_integrity_message(cache, tmp_path, capsys):
    wrong = tmp_path / WEIGHTS_NAME
    wrong.write_bytes(b"not the checkpoint")
    assert main(["models", "fetch", "megadetector_lite", "--weights", str(wrong)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"error: {wrong}: sha256 is {sha256(b'not the checkpoint')}, expected {MEGADETECTOR_LITE.weights_sha256}" in err
    assert f"not the official {WEIGHTS_NAME}" in err
    assert not (cache / WEIGHTS_NAME).exists()


def test_fetch_with_a_missing_local_file(cache, tmp_path, capsys):
    assert main(["models", "fetch", "megadetector_lite", "--weights", str(tmp_path / "zamba.whl")]) == EXIT_FAILED
    assert "zamba.whl is not a file" in capsys.readouterr().err


def test_fetch_an_unknown_model_lists_the_valid_names(capsys):
    assert main(["models", "fetch", "nosuchmodel"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown model 'nosuchmodel'" in err and "known models: blank_nonblank, european, lila.science, megadetector_lite, slowfast, speciesnet, time_distributed" in err
    assert main(["models", "fetch", "megadetector_lit"]) == EXIT_USAGE
    assert "did you mean 'megadetector_lite'" in capsys.readouterr().err


def test_fetch_from_the_package_index(cache, http_server, fake_sha, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("PIP_INDEX_URL", publish_wheel(http_server, "zamba", "2.7.2", {MEMBER: FAKE_WEIGHTS, "zamba/__init__.py": b""}))
    assert main(["models", "fetch", "megadetector_lite"]) == EXIT_OK
    cached = cache / WEIGHTS_NAME
    assert cached.read_bytes() == FAKE_WEIGHTS
    captured = capsys.readouterr()
    assert f"megadetector_lite: {cached} (sha256 checked)" in captured.out
    assert "fetching megadetector_lite from" in captured.err and "zamba==2.7.2" in captured.err
    assert wheel_requests(http_server) == ["/packages/zamba-2.7.2-py3-none-any.whl"]
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no wheel or temporaries left
    # Already here: nothing is downloaded again, unless --force.
    assert main(["models", "fetch", "megadetector_lite"]) == EXIT_OK
    assert len(wheel_requests(http_server)) == 1
    assert main(["models", "fetch", "megadetector_lite", "--force"]) == EXIT_OK
    assert len(wheel_requests(http_server)) == 2
    # And the list now shows it.
    capsys.readouterr()
    assert main(["models", "list"]) == EXIT_OK
    assert f"here:    {cached} (cache)" in capsys.readouterr().out


def test_fetch_from_a_local_wheel(cache, tmp_path, fake_sha, capsys):
    wheel = tmp_path / "zamba-2.7.2-py3-none-any.whl"
    wheel.write_bytes(make_wheel({MEMBER: FAKE_WEIGHTS}))
    assert main(["models", "fetch", "megadetector_lite", "--weights", str(wheel)]) == EXIT_OK
    assert (cache / WEIGHTS_NAME).read_bytes() == FAKE_WEIGHTS
    assert f"fetching megadetector_lite from {wheel}" in capsys.readouterr().err


def test_fetch_with_the_index_unreachable_says_what_to_do(cache, capsys):
    assert main(["models", "fetch", "megadetector_lite"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9/simple/zamba/" in err
    assert "pip download zamba==2.7.2 --no-deps" in err and "kifaru models fetch megadetector_lite --weights FILE" in err
    assert not (cache / WEIGHTS_NAME).exists()


# -- the official video models (files on the local server standing in for DrivenData's buckets) ----


@pytest.fixture
def video_cache(cache, monkeypatch):
    monkeypatch.delenv(MODELS_URL_ENV, raising=False)
    for entry in list_video_models():
        monkeypatch.delenv(entry.weights_env_var, raising=False)
    return cache


def test_list_shows_the_video_models(video_cache, capsys):
    assert main(["models", "list"]) == EXIT_OK
    out = capsys.readouterr().out
    block = out[out.index("time_distributed [video_classifier]"):].split("\n\n")[0]
    assert "model:   TimeDistributedEfficientNet, 32 species, 16 frames" in block
    assert "weights: time_distributed_1d483fc723.ckpt, checked against its S3 ETag (MD5), model class and species" in block
    assert "from:    https://drivendata-public-assets.s3.amazonaws.com/zamba_official_models/time_distributed_1d483fc723.ckpt" in block
    assert "--region eu or asia" in block and "here:    not cached" in block
    assert "figures: zamba's published validation figures (val_metrics.json): top-1 accuracy 0.811, macro-F1 0.442" in block
    assert "model:   SlowFast, 32 species, 32 frames" in out and "european_0a80dc77bf.ckpt" in out
    assert "; or pass --checkpoint FILE to predict or train" in block and "--weights FILE to detect" not in block


def test_fetch_a_video_model_from_a_region_or_mirror(video_cache, http_server, monkeypatch, tmp_path, capsys):  # noqa: F811
    data = tiny_checkpoint(tmp_path / "e.ckpt", EUROPEAN)
    folder = use_mirror(http_server, monkeypatch)
    publish(http_server, EUROPEAN, data)
    assert main(["models", "fetch", "european", "--region", "eu"]) == EXIT_OK
    captured = capsys.readouterr()
    cached = video_cache / EUROPEAN.weights_filename
    assert cached.read_bytes() == data
    assert f"fetching european from {folder}/{EUROPEAN.weights_filename} (the mirror KIFARU_MODELS_URL names)" in captured.err
    assert f"european: {cached} (MD5 (S3 ETag) and checkpoint structure (model_class, species))" in captured.out
    assert main(["models", "fetch", "european"]) == EXIT_OK and len(checkpoint_requests(http_server)) == 1
    assert main(["models", "fetch", "european", "--region", "asia", "--force"]) == EXIT_OK
    assert len(checkpoint_requests(http_server)) == 2
    assert main(["models", "fetch", "european", "--region", "mars"]) == EXIT_USAGE
    # Without a mirror the region picks the bucket (nothing listens there in this test: refused).
    monkeypatch.delenv(MODELS_URL_ENV)
    monkeypatch.setattr("kifaru.models.s3.S3_BUCKETS", {"us": "x", "eu": "127.0.0.1:9/eu", "asia": "x"})
    assert main(["models", "fetch", "european", "--region", "eu", "--force"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"cannot download https://127.0.0.1:9/eu.s3.amazonaws.com/zamba_official_models/{EUROPEAN.weights_filename}" in err
    assert "kifaru models fetch european --weights FILE" in err and "--checkpoint FILE" in err
    assert cached.read_bytes() == data  # --force that fails keeps the good copy


def test_fetch_a_video_model_from_a_local_file(video_cache, tmp_path, capsys):
    source = tmp_path / "downloads" / "european.ckpt"
    source.parent.mkdir()
    data = tiny_checkpoint(source, EUROPEAN)
    assert main(["models", "fetch", "european", "--weights", str(source)]) == EXIT_OK
    cached = video_cache / EUROPEAN.weights_filename
    assert cached.read_bytes() == data and source.is_file()
    out = capsys.readouterr().out
    assert f"european: {cached} (structural check only: model_class and species match; not compared with the published file)" in out
    assert main(["models", "list"]) == EXIT_OK
    assert f"here:    {cached} (cache)" in capsys.readouterr().out
    # Another model's checkpoint: refused, naming the file; the good copy stays.
    wrong = tmp_path / "downloads" / "slowfast.ckpt"
    tiny_checkpoint(wrong, EUROPEAN, model_class="SlowFast")
    assert main(["models", "fetch", "european", "--weights", str(wrong), "--force"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"error: checkpoint {wrong}: not zamba's official european checkpoint" in err
    assert "its model_class is SlowFast, expected TimeDistributedEfficientNet" in err
    assert cached.read_bytes() == data
    assert [p.name for p in video_cache.iterdir() if p.name.startswith(".")] == []


# -- as a new user: a fresh HOME, weights served the way a user gets them ---------------------------


def test_models_list_as_a_new_user(new_user, capsys):
    assert main(["models", "list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"model cache: {new_user.model_cache} (set MODEL_CACHE_DIR to move it)\n")
    assert out.count("here:    not cached (fetched on first use)") == len(list(list_models()))
    assert "drivendata-public-assets.s3.amazonaws.com" in out and "(--region eu or asia" in out
    assert not new_user.model_cache.exists()  # listing writes nothing


def test_models_fetch_megadetector_lite_as_a_new_user(new_user, capsys):
    new_user.serve_megadetector_lite()
    assert main(["models", "fetch", "megadetector_lite"]) == EXIT_OK
    captured = capsys.readouterr()
    cached = new_user.model_cache / WEIGHTS_NAME
    assert cached.read_bytes() == new_user.megadetector_weights.read_bytes()
    assert captured.out == f"megadetector_lite: {cached} (sha256 checked)\n"
    assert captured.err.startswith("fetching megadetector_lite from ")
    # The wheel's progress, its last line at its whole size.
    done, total = re.fullmatch(r"  (\d+) MB of (\d+) MB", captured.err.splitlines()[-1]).groups()
    assert done == total != "0" and len(captured.err.splitlines()) > 2
    assert main(["models", "list"]) == EXIT_OK
    assert f"here:    {cached} (cache)" in capsys.readouterr().out


def test_models_fetch_time_distributed_from_the_mirror_as_a_new_user(new_user, tmp_path, capsys):
    from kifaru.models.registry import TIME_DISTRIBUTED

    data = tiny_checkpoint(tmp_path / "stand-in.ckpt", TIME_DISTRIBUTED, padding=6 << 20)
    url = new_user.serve_official_checkpoint("time_distributed", data)
    assert main(["models", "fetch", "time_distributed"]) == EXIT_OK
    captured = capsys.readouterr()
    cached = new_user.model_cache / TIME_DISTRIBUTED.weights_filename
    assert cached.read_bytes() == data
    assert f"fetching time_distributed from {url} (the mirror KIFARU_MODELS_URL names)" in captured.err
    assert f"  {len(data) >> 20} MB of {len(data) >> 20} MB" in captured.err.splitlines()
    assert captured.out == f"time_distributed: {cached} (MD5 (S3 ETag) and checkpoint structure (model_class, species))\n"


def test_models_fetch_weights_imports_a_copy_for_both_kinds_as_a_new_user(new_user, tmp_path, capsys):
    """What `models list` advises offline: `models fetch NAME --weights FILE`, for the detector
    (its weights file) and for a video model (its checkpoint)."""
    from kifaru.models.registry import TIME_DISTRIBUTED

    if new_user.megadetector_weights is None:
        pytest.skip("MegadetectorLite weights are not here; `kifaru models fetch megadetector_lite` gets them")
    checkpoint = tmp_path / "downloads" / "td.ckpt"
    checkpoint.parent.mkdir()
    data = tiny_checkpoint(checkpoint, TIME_DISTRIBUTED)
    for name, source in (("megadetector_lite", new_user.megadetector_weights), ("time_distributed", checkpoint)):
        assert main(["models", "fetch", name, "--weights", str(source)]) == EXIT_OK
        assert f"fetching {name} from {source}" in capsys.readouterr().err
    assert (new_user.model_cache / WEIGHTS_NAME).read_bytes() == new_user.megadetector_weights.read_bytes()
    assert (new_user.model_cache / TIME_DISTRIBUTED.weights_filename).read_bytes() == data
    assert main(["models", "list"]) == EXIT_OK
    assert capsys.readouterr().out.count("(cache)") == 2
