"""Where the Ray backend connects: the cluster named by --ray-address or RAY_ADDRESS, else a Ray
started for this run alone on the loopback (a machine's outward address may be firewalled, and a
Ray left running here by `ray start` is not the one the user asked for)."""

from __future__ import annotations

import os

import pytest

from kifaru.exceptions import ConfigError
from kifaru.runs import ray_backend


class FakeRay:
    def __init__(self, refuse=False):
        self.calls = []
        self.refuse = refuse

    def is_initialized(self):
        return bool(self.calls)

    def init(self, **kwargs):
        self.calls.append({**kwargs, "loopback only": os.environ.get(ray_backend.LOCAL_RAY_ONLY)})
        if self.refuse:
            raise ConnectionError("nothing listens there")


@pytest.fixture
def fake_ray(monkeypatch):
    ray = FakeRay()
    monkeypatch.setattr(ray_backend, "import_ray", lambda: ray)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(ray_backend.LOCAL_RAY_ONLY, raising=False)
    return ray


def where(call):
    return call["address"], call["loopback only"]


def test_without_an_address_a_ray_is_started_here_on_the_loopback(fake_ray):
    """Its listening address is the run's own Ray process; tests/cli/test_cluster_new_user.py
    checks it on a real Ray."""
    assert ray_backend.connect(None) is fake_ray
    assert [where(call) for call in fake_ray.calls] == [("local", "0")]
    # Put back: a `ray start` this process runs later (joining a cluster) must not inherit it.
    assert ray_backend.LOCAL_RAY_ONLY not in os.environ


def test_ray_address_in_the_environment_is_left_to_ray(fake_ray, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    ray_backend.connect(None)
    assert [where(call) for call in fake_ray.calls] == [(None, None)]


def test_an_address_given_is_the_one_connected_to(fake_ray):
    ray_backend.connect("10.0.0.5:6379")
    ray_backend.connect("10.0.0.5:6379")  # connected already: not a second init
    assert [where(call) for call in fake_ray.calls] == [("10.0.0.5:6379", None)]


def test_an_address_where_nothing_answers_is_a_config_error_naming_it(fake_ray):
    fake_ray.refuse = True
    with pytest.raises(ConfigError, match=r"--ray-address 10\.0\.0\.5:6379: no Ray cluster answers there .*ray start --head"):
        ray_backend.connect("10.0.0.5:6379")


def test_a_setting_of_the_users_own_is_put_back(fake_ray, monkeypatch):
    monkeypatch.setenv(ray_backend.LOCAL_RAY_ONLY, "1")  # a macOS user's own cluster
    ray_backend.connect(None)
    assert [where(call) for call in fake_ray.calls] == [("local", "0")]
    assert os.environ[ray_backend.LOCAL_RAY_ONLY] == "1"
