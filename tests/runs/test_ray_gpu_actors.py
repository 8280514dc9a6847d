"""The classifier's actors on a Ray cluster with GPUs: one per GPU, each holding one
(``num_gpus=1``). The cluster here declares a GPU it does not have (``ray start --num-gpus=1``):
the actor gets it from Ray, finds no CUDA device and runs on the CPU, saying so, with the outputs
of a local run. On a machine with a GPU the same actor runs the classifier on it."""

from __future__ import annotations

import pytest

from kifaru.cli import EXIT_OK, main
from kifaru.outputs.results_file import RESULTS_FILE
from tests.helpers.outputs import assert_same_outputs
from tests.helpers.ray_cluster import ray_cluster
from tests.media import make_clip
from tests.models.tiny_model import write_tiny_checkpoint

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster_with_a_gpu():
    with ray_cluster([("--num-cpus=1",), ("--num-cpus=1", "--num-gpus=1")]) as address:
        yield address


def test_the_classifier_takes_the_clusters_gpu(cluster_with_a_gpu, tmp_path):
    from functools import partial

    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.runs.predict import classifier_on, classify_batch, frames_of
    from kifaru.runs.ray_backend import RayClassifiers

    info = read_checkpoint_info(write_tiny_checkpoint(tmp_path / "tiny.ckpt"))
    load = partial(classifier_on, info, "0" * 64, tmp_path / "cache", None)
    with RayClassifiers(load, classify_batch, frames_of, info.model_class, cluster_with_a_gpu) as classifiers:
        (description,) = classifiers.descriptions  # one GPU: one actor
        assert description["gpu_ids"] == ["0"]
        import torch

        if torch.cuda.is_available():
            assert description["device"] == "cuda"
        else:
            assert description["device"] == "cpu"
            assert classifiers.describe() == (
                "1 actor on its node's CPU cores, in PyTorch (on the CPU: Ray gave it a GPU, but PyTorch sees no CUDA device there)"
            )


def test_predict_with_the_classifier_on_the_gpu_node_writes_what_a_local_run_writes(cluster_with_a_gpu, tmp_path, capsys):
    folder = tmp_path / "clips"
    for i in range(3):
        make_clip(folder / f"c{i}.mp4", n_frames=20 + i)
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    base = ["predict", "--data-dir", str(folder), "--checkpoint", str(checkpoint)]
    assert main([*base, "--save-dir", str(tmp_path / "local")]) == EXIT_OK
    capsys.readouterr()
    ray_run = [*base, "--backend", "ray", "--ray-address", cluster_with_a_gpu]
    assert main([*ray_run, "--save-dir", str(tmp_path / "ray")]) == EXIT_OK
    assert "classifier: 1 actor on " in capsys.readouterr().err  # the GPU's
    assert_same_outputs(tmp_path / "local", tmp_path / "ray", ["zamba_predictions.csv", RESULTS_FILE])
    # --gpus 0: the CPUs of both nodes, the GPU left alone.
    assert main([*ray_run, "--save-dir", str(tmp_path / "ray-cpu"), "--gpus", "0"]) == EXIT_OK
    assert "classifier: 2 actors, each on its node's CPU cores" in capsys.readouterr().err
    assert_same_outputs(tmp_path / "local", tmp_path / "ray-cpu", ["zamba_predictions.csv", RESULTS_FILE])
