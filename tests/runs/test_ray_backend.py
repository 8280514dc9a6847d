"""The Ray backend on a local Ray cluster of two nodes (a head and a second node, each its own
``ray start`` process, on 127.0.0.1): detect's, predict's and image predict's outputs are the
local backend's, byte for byte; the classifier runs in one actor per node; a reading or a
classifier actor killed mid-run loses no file and doubles none."""

from __future__ import annotations

import os
import signal

import pytest

from kifaru.cli import EXIT_FAILED, EXIT_OK, main
from kifaru.outputs.results_file import RESULTS_FILE
from tests.helpers.outputs import assert_same_outputs
from tests.helpers.ray_cluster import actor_pids, predicted_here_and_run_for, ray_cluster
from tests.media import make_animal_clip, make_clip
from tests.models.tiny_model import write_tiny_checkpoint

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    with ray_cluster() as address:
        yield address


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for i in range(6):
        make_animal_clip(folder / f"cam{i % 2}" / f"clip{i}.mp4", animal_at=range(i, i + 4), n_frames=12, fps=4)
    (folder / "cam1" / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def test_detect_on_a_two_node_cluster_writes_what_a_local_run_writes(cluster, clips, megadetector_lite, tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["detect", "--data-dir", str(clips), "--output-dir", str(local), "-q"]) == EXIT_FAILED
    capsys.readouterr()
    assert main(["detect", "--data-dir", str(clips), "--output-dir", str(remote), "--backend", "ray", "--ray-address", cluster, "-q"]) == EXIT_FAILED
    assert "backend: Ray cluster: 2 nodes, 2 CPUs" in capsys.readouterr().err
    assert_same_outputs(local, remote, ["detections.json", "detection_summary.csv", "segments.csv", RESULTS_FILE])


def test_a_worker_killed_mid_run_loses_and_doubles_no_file(cluster, clips, megadetector_lite, tmp_path):
    from kifaru.runs.detect import detect_files, resolve_detect_run

    local, remote = tmp_path / "local", tmp_path / "ray"
    files = sorted(p for p in clips.rglob("*.mp4"))
    detect_files(files, local, relative_to=clips, num_workers=0)
    run = resolve_detect_run(files, remote, relative_to=clips, backend="ray", ray_address=cluster)
    killed = []

    def progress(record, done, total):
        if done == 1 and not killed:  # the others are in flight: kill a worker that runs one
            pids = actor_pids("_Actor")
            assert pids, "no Ray actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = detect_files(run=run, progress=progress)
    assert killed
    assert sorted(r.item for r in report.records) == sorted(str(f) for f in files)  # each once
    assert_same_outputs(local, remote, ["detections.json", "detection_summary.csv", RESULTS_FILE])


def test_predict_reads_clips_in_the_cluster_and_writes_what_a_local_run_writes(cluster, tmp_path, capsys):
    folder = tmp_path / "clips"
    for i in range(4):
        make_clip(folder / f"c{i}.mp4", n_frames=20 + i)
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    base = ["predict", "--data-dir", str(folder), "--checkpoint", str(checkpoint), "--output-format", "csv,megadetector"]
    assert main([*base, "--save-dir", str(tmp_path / "local")]) == EXIT_OK
    capsys.readouterr()
    assert main([*base, "--save-dir", str(tmp_path / "ray"), "--backend", "ray", "--ray-address", cluster]) == EXIT_OK
    assert "classifier: 2 actors, each on its node's CPU cores, in PyTorch" in capsys.readouterr().err
    assert_same_outputs(tmp_path / "local", tmp_path / "ray", ["zamba_predictions.csv", "megadetector_predictions.json", RESULTS_FILE])


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    import builtins

    from kifaru.cli import EXIT_USAGE

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    make_clip(tmp_path / "a.mp4")
    assert main(["detect", "--data-dir", str(tmp_path), "--backend", "ray"]) == EXIT_USAGE
    assert 'pip install "kifaru[ray]"' in capsys.readouterr().err


def test_the_classifier_runs_in_one_actor_per_node_of_a_cluster_without_gpus(cluster, tmp_path):
    from functools import partial

    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.runs.predict import classifier_on, classify_batch, frames_of
    from kifaru.runs.ray_backend import RayClassifiers, connect

    info = read_checkpoint_info(write_tiny_checkpoint(tmp_path / "tiny.ckpt"))
    load = partial(classifier_on, info, "0" * 64, tmp_path / "cache", None)
    with RayClassifiers(load, classify_batch, frames_of, info.model_class, cluster) as classifiers:
        nodes = {node["NodeID"] for node in connect(cluster).nodes() if node["Alive"]}
        assert sorted(d["node"] for d in classifiers.descriptions) == sorted(nodes)  # one on each
        assert all(d["device"] == "cpu" and not d["gpu_ids"] for d in classifiers.descriptions)
        assert classifiers.describe() == "2 actors, each on its node's CPU cores, in PyTorch"


def test_a_classifier_actor_killed_mid_run_loses_and_doubles_no_clip(cluster, tmp_path):
    from kifaru.runs.predict import predict_model

    folder, run = predicted_here_and_run_for(cluster, tmp_path, clips=6)
    killed = []

    def progress(record, done, total):
        if done == 1 and not killed:  # the other clips' batches are on their way to the classifiers
            pids = actor_pids("_ClassifierActor")
            assert pids, "no classifier actor process found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    report = predict_model(run.predict_config, run=run, progress=progress)
    assert killed
    assert sorted(r.item for r in report.records) == sorted(str(f) for f in folder.glob("*.mp4"))  # each once
    assert not report.failed
    assert_same_outputs(tmp_path / "local", tmp_path / "ray", ["zamba_predictions.csv", RESULTS_FILE])


def test_image_predict_on_the_cluster_writes_what_a_local_run_writes(cluster, megadetector_lite, tmp_path, capsys):
    from tests.images.photos import cat_photo, drawn_photo, write_image_checkpoint

    folder = tmp_path / "photos"
    for camera in ("cam1", "cam2"):
        (folder / camera).mkdir(parents=True)
        cat_photo().save(folder / camera / "cat.jpg")
        drawn_photo(3 if camera == "cam1" else 4).save(folder / camera / "drawn.jpg")
    (folder / "cam2" / "broken.jpg").write_bytes(b"not a photo")
    checkpoint = write_image_checkpoint(tmp_path / "image.ckpt")
    base = ["image", "predict", "--data-dir", str(folder), "--checkpoint", str(checkpoint), "--sequences", "-q"]
    assert main([*base, "--save-dir", str(tmp_path / "local")]) == EXIT_FAILED  # broken.jpg
    capsys.readouterr()
    assert main([*base, "--save-dir", str(tmp_path / "ray"), "--backend", "ray", "--ray-address", cluster]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "one actor per CPU of the Ray cluster" in err and "classifier: 2 actors, each on its node's CPU cores, in PyTorch" in err
    outputs = ["zamba_predictions.csv", "zamba_predictions_failures.csv", "zamba_predictions_sequences.csv", RESULTS_FILE]
    assert_same_outputs(tmp_path / "local", tmp_path / "ray", outputs)
