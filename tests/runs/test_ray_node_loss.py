"""A node of the Ray cluster lost mid-run as a crashed machine is lost (its raylet and every
process it started killed at once): the clips it had are run again on the node left, the pools
shrink to what the cluster still has instead of waiting for a CPU or a GPU that is gone, the run
says so, and its outputs are a local run's. The cluster: a head with 1 CPU, and a node with 1 CPU
and the cluster's one GPU (declared: ``ray start --num-gpus=1``), on which the classifier runs."""

from __future__ import annotations

import threading

import pytest

from kifaru.outputs.results_file import RESULTS_FILE
from tests.helpers.outputs import assert_same_outputs
from tests.helpers.ray_cluster import kill_node, predicted_here_and_run_for, ray_cluster

ray = pytest.importorskip("ray")

# Ray's control service declares a node dead after its health checks fail: in about 2 s with these,
# instead of 15 s or more with Ray's defaults.
QUICK_NODE_DEATH = {"health_check_initial_delay_ms": "1000", "health_check_period_ms": "500", "health_check_timeout_ms": "500", "health_check_failure_threshold": "3"}
RUN_DEADLINE_S = 120  # a run waiting forever for a lost node's CPU fails the test instead of hanging it


@pytest.fixture
def cluster():
    with ray_cluster([("--num-cpus=1",), ("--num-cpus=1", "--num-gpus=1")], settings=QUICK_NODE_DEATH) as address:
        yield address


def within(seconds: int, work):
    """work(), failing the test if it has not returned in ``seconds`` (in a thread of its own: a
    run blocked in Ray's wait hears no signal; the cluster's teardown then ends the thread)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # noqa: B036 - given back to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the run did not end within {seconds} s (waiting for an actor that cannot start?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_node_lost_mid_run_loses_and_doubles_no_clip_and_the_run_goes_on_without_it(cluster, tmp_path):
    from kifaru.notices import listening
    from kifaru.runs.predict import predict_model
    from kifaru.runs.ray_backend import connect

    folder, run = predicted_here_and_run_for(cluster, tmp_path, clips=8)
    ray_here = connect(cluster)
    (second,) = [n["NodeID"] for n in ray_here.nodes() if n["Alive"] and "node:__internal_head__" not in n["Resources"]]
    killed = []

    def progress(record, done, total):
        if done == 1 and not killed:  # the node has a clip being read and the classifier's batches
            killed.extend(kill_node(ray_here, second))

    heard = []
    with listening(lambda notice: heard.append(notice.message)):
        report = within(RUN_DEADLINE_S, lambda: predict_model(run.predict_config, run=run, progress=progress))
    assert killed
    assert [n["Alive"] for n in ray_here.nodes() if n["NodeID"] == second] == [False]
    assert sorted(r.item for r in report.records) == sorted(str(f) for f in folder.glob("*.mp4"))  # each once
    assert not report.failed, [(r.item, r.stage, r.reason) for r in report.failed]
    assert "classifier: 1 actor on " in "\n".join(heard)  # at the start: the GPU node's
    assert "warning: the Ray cluster has lost a node (or the room for an actor): the run goes on with 1 reading actor of the 2 it started with" in heard
    assert "warning: the Ray cluster has no GPU left: the classifier goes on on a node's CPU cores" in heard
    assert_same_outputs(tmp_path / "local", tmp_path / "ray", ["zamba_predictions.csv", RESULTS_FILE])
