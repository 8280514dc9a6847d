"""A user on a fresh machine: an empty HOME (so an empty model and frame cache), no kifaru
variables, a new working folder, and model weights reachable only the way a user gets them: from a
package index and a model bucket, both served by the local HTTP server on 127.0.0.1.

Tests of "a command with only its required arguments" use the ``new_user`` fixture (registered in
tests/conftest.py)::

    def test_detect_as_a_new_user(new_user):
        new_user.serve_megadetector_lite()
        assert main(["detect", "--data-dir", str(clips)]) == 0
        assert (new_user.work / "detections.json").exists()
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.models.local_index import publish_wheel
from tests.models.official_files import publish, use_mirror

# Variables that point kifaru somewhere other than a new user's defaults.
_KIFARU_VARIABLES = (
    "MODEL_CACHE_DIR",
    "VIDEO_CACHE_DIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "PIP_INDEX_URL",
    "KIFARU_MODELS_URL",
    "KIFARU_MEGADETECTOR_LITE_WEIGHTS",
    "KIFARU_DETECTOR_RUNTIME",
    "KIFARU_CLASSIFIER_RUNTIME",
)


def _developer_megadetector_weights() -> Path | None:
    """The real MegadetectorLite weights on this machine (before HOME is replaced), if any."""
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import locate_weights

    location = locate_weights(MEGADETECTOR_LITE)
    return location.path if location is not None and location.path.is_file() else None


@dataclass
class NewUser:
    home: Path
    work: Path  # the current folder: where outputs go by default
    server: object  # tests.http_server.ServerState
    monkeypatch: pytest.MonkeyPatch
    megadetector_weights: Path | None

    @property
    def model_cache(self) -> Path:
        """Where kifaru keeps weights for this user (empty at first)."""
        from kifaru.models.weights import model_cache_dir

        return model_cache_dir()

    def serve_megadetector_lite(self) -> None:
        """Put the zamba wheel holding the real MegadetectorLite weights on the local package index
        and point PIP_INDEX_URL at it, as a mirror of PyPI. Skips the test where this machine has
        no copy of the weights (`kifaru models fetch megadetector_lite`, run by .ci/run)."""
        if self.megadetector_weights is None:
            pytest.skip("MegadetectorLite weights are not here; `kifaru models fetch megadetector_lite` gets them")
        from kifaru.models.registry import MEGADETECTOR_LITE

        source = MEGADETECTOR_LITE.weights_source
        index = publish_wheel(self.server, source.package, source.version, {source.member: self.megadetector_weights.read_bytes()})
        self.monkeypatch.setenv("PIP_INDEX_URL", index)

    def serve_official_checkpoint(self, name: str, data: bytes) -> str:
        """Serve ``data`` as official model ``name``'s checkpoint (a video or an image model) in a
        model bucket mirror (KIFARU_MODELS_URL), with its S3 ETag; return its URL."""
        from kifaru.models.registry import get_model_entry

        use_mirror(self.server, self.monkeypatch)
        return publish(self.server, get_model_entry(name), data)


@pytest.fixture
def new_user(tmp_path, http_server, monkeypatch) -> NewUser:
    weights = _developer_megadetector_weights()
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    for name in _KIFARU_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    user = NewUser(home, work, http_server, monkeypatch, weights)
    assert str(user.model_cache).startswith(str(home)), "the model cache must be the new user's"
    assert not os.path.exists(user.model_cache)
    return user


@pytest.fixture(scope="session")
def random_time_distributed_checkpoint(tmp_path_factory) -> Path:
    """The official time_distributed model's architecture and species with seeded random weights
    (208 MB, written once per test session): what `predict` and `train` fetch by default."""
    from kifaru.models.registry import video_model_entry
    from tests.models.random_checkpoint import write_random_time_distributed

    path = tmp_path_factory.mktemp("official") / "time_distributed.ckpt"
    return write_random_time_distributed(path, list(video_model_entry("time_distributed").species), seed=0)
