from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real camera-trap media beside the project (absent in a fresh clone: tests using it skip).
SHARED_DATA = Path(os.environ.get("KIFARU_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _no_cache_from_environment(monkeypatch):
    """A developer's VIDEO_CACHE_DIR must not leak into tests."""
    monkeypatch.delenv("VIDEO_CACHE_DIR", raising=False)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real media not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def megadetector_lite():
    """The real MegadetectorLite, when its weights are on this machine (model cache or
    KIFARU_MEGADETECTOR_LITE_WEIGHTS); tests never download them."""
    from kifaru.detection.megadetector_lite import load_megadetector_lite
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import locate_weights

    location = locate_weights(MEGADETECTOR_LITE)
    if location is None or not location.path.is_file():
        pytest.skip("MegadetectorLite weights are not here; `kifaru models fetch megadetector_lite` gets them")
    return load_megadetector_lite()


# The local HTTP server (127.0.0.1) and the fresh-machine user, for every test folder.
from tests.http_server import http_server, lightning_attribute_dict  # noqa: E402,F401
from tests.new_user import new_user, random_time_distributed_checkpoint  # noqa: E402,F401
