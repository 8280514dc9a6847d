"""The Ray backend's pool rules, on a stand-in for Ray whose cluster the test changes: a dead
actor is replaced while the cluster has room for it, its slot is dropped when a lost node took
the room, a replacement that cannot start is given up (or asked for again where nothing else
runs), and an actor that died before it started does not put the blame on its work, up to a
limit. The same rules on a real cluster: tests/runs/test_ray_node_loss.py."""

from __future__ import annotations

import pytest

from kifaru.notices import listening
from kifaru.runs.ray_backend import MAX_FAILED_STARTS, _Pool


class Future:
    def __init__(self):
        self.state = "pending"  # "pending", "done" or "failed"


class Actor:
    def __init__(self, name):
        self.name = name
        self.ready = Future()
        self.killed = False
        self.__ray_ready__ = self  # actor.__ray_ready__.remote() is the ready future

    def remote(self):
        return self.ready


class FakeRay:
    def __init__(self, **resources):
        self.resources = resources

    def cluster_resources(self):
        return dict(self.resources)

    def wait(self, futures, num_returns=1, timeout=None):
        ready = [f for f in futures if f.state != "pending"]
        return ready, [f for f in futures if f.state == "pending"]

    def get(self, future):
        if future.state == "failed":
            raise RuntimeError("the actor died")
        return True

    def kill(self, actor):
        actor.killed = True


def cpu_pool(ray, count):
    made = []

    def make(slot, replacing):
        made.append(Actor(f"{slot}{'+' if replacing else ''}"))
        return made[-1], {"CPU": 1}

    return _Pool(ray, make, count, "reading actor"), made


def test_an_actor_whose_worker_died_is_replaced_while_the_cluster_has_its_cpu():
    ray = FakeRay(CPU=2)
    pool, made = cpu_pool(ray, 2)
    assert pool.replace(1) is True
    assert pool.live() == [0, 1] and pool.actors[1] is made[-1] and 1 in pool.starting
    made[-1].ready.state = "done"
    assert pool.stuck() == [] and not pool.starting  # started: nothing to look at again


def test_a_slot_whose_node_was_lost_is_dropped_and_the_run_says_so():
    ray = FakeRay(CPU=1)  # the second node and its CPU are gone
    pool, made = cpu_pool(ray, 2)
    heard = []
    with listening(lambda notice: heard.append(notice.message)):
        assert pool.replace(1) is False
    assert pool.live() == [0] and len(made) == 2  # no replacement asked for
    assert heard == ["warning: the Ray cluster has lost a node (or the room for an actor): the run goes on with 1 reading actor of the 2 it started with"]


def test_the_last_actor_is_always_replaced():
    pool, made = cpu_pool(FakeRay(CPU=0), 1)
    assert pool.replace(0) is True and pool.live() == [0]


def test_a_replacement_asked_for_before_ray_knew_the_node_was_lost_is_given_up_once_it_knows():
    ray = FakeRay(CPU=2)
    pool, made = cpu_pool(ray, 2)
    pool.replace(1)  # Ray still counts the lost node's CPU
    waiting = made[-1]
    assert pool.stuck() == [] and 1 in pool.starting  # it may yet start
    ray.resources["CPU"] = 1  # now Ray knows
    assert pool.stuck() == [1]
    assert waiting.killed and pool.live() == [0] and not pool.starting


def test_where_nothing_else_runs_a_replacement_that_cannot_start_is_asked_for_again_as_the_cluster_now_is():
    ray = FakeRay(GPU=1)
    made = []

    def make(slot, replacing):
        gpu = ray.cluster_resources().get("GPU", 0) >= 1
        made.append(("gpu" if gpu else "cpu", Actor(slot)))
        return made[-1][1], {"GPU": 1} if gpu else {}

    pool = _Pool(ray, make, 1, "classifier actor")
    pool.replace(0)  # the GPU node lost, Ray not knowing yet
    ray.resources["GPU"] = 0
    assert pool.stuck() == [0]  # its work goes again, to the slot's new actor
    assert [kind for kind, _ in made] == ["gpu", "gpu", "cpu"] and made[1][1].killed
    assert pool.live() == [0] and pool.actors[0] is made[2][1]


def test_starting_ones_are_counted_once_kept():
    ray = FakeRay(CPU=3)  # room for one more beside the started actor: not for two
    pool, made = cpu_pool(ray, 3)
    pool.replace(1)
    pool.replace(2)
    ray.resources["CPU"] = 2
    assert pool.stuck() == [2] and pool.live() == [0, 1]


def test_an_actor_that_died_before_it_started_does_not_blame_its_work_up_to_a_limit():
    ray = FakeRay(CPU=2)
    pool, made = cpu_pool(ray, 2)
    assert pool.died_starting(1) is False  # one of the first actors: it had started
    blamed = []
    for _ in range(MAX_FAILED_STARTS + 1):
        pool.replace(1)
        made[-1].ready.state = "failed"  # its node lost as it started
        blamed.append(pool.died_starting(1))
    assert blamed == [True] * MAX_FAILED_STARTS + [False]
    pool.replace(1)
    made[-1].ready.state = "done"
    assert pool.died_starting(1) is False  # it started: its death was its work's


@pytest.mark.parametrize("state", ["pending", "done"])
def test_an_actor_still_starting_or_started_is_not_one_that_died_starting(state):
    pool, made = cpu_pool(FakeRay(CPU=2), 2)
    pool.replace(0)
    made[-1].ready.state = state
    assert pool.died_starting(0) is False
