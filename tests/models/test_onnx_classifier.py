"""TimeDistributedEfficientNet in ONNX Runtime: the same probabilities as PyTorch, exported once per
checkpoint in a child process, a fallback to PyTorch, and prediction without importing PyTorch.

The network is the real TimeDistributedEfficientNet with timm's tiny ``test_efficientnet`` as its
backbone, so that exporting takes seconds (the official backbone's export takes about a minute).
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kifaru.models import onnx_classifier, runner, time_distributed
from kifaru.models.checkpoint import write_checkpoint
from kifaru.models.checkpoint_info import read_checkpoint_info
from kifaru.models.download import sha256_of
from kifaru.models.runner import VideoClassifier, load_classifier
from tests.models.random_checkpoint import calibrate_batchnorm, photo_frames, random_frames, random_state_dict
from tests.models.tiny_model import write_tiny_checkpoint

SPECIES = ["blank", "elephant", "leopard"]


@pytest.fixture
def small_backbone(monkeypatch):
    monkeypatch.setattr(time_distributed, "BACKBONE_NAME", "test_efficientnet")


@pytest.fixture
def checkpoint(tmp_path, small_backbone, monkeypatch):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    model = time_distributed.TimeDistributedEfficientNet(len(SPECIES))
    model.load_state_dict(random_state_dict(model, seed=7))
    with torch.no_grad():
        model.classifier[-1].weight.mul_(100)  # the tiny backbone's features vary little: spread the outputs
    path = tmp_path / "small.ckpt"
    write_checkpoint(path, model, "TimeDistributedEfficientNet", SPECIES, {"num_frames": 16})
    return path


def clips() -> list[np.ndarray]:
    clip = random_frames(11, height=72, width=128)
    return [clip, clip // 4]  # the same scene much darker: outputs must differ


def test_onnx_runtime_gives_pytorchs_probabilities(checkpoint):
    info = read_checkpoint_info(checkpoint)
    sha = sha256_of(checkpoint)
    onnx_classifier.export_checked(checkpoint, onnx_classifier.onnx_stem(sha))
    classifier = load_classifier(info, sha, "cpu")
    assert isinstance(classifier, onnx_classifier.OnnxTimeDistributed)
    expected = VideoClassifier.from_file(checkpoint).predict_proba(clips())
    got = classifier.predict_proba(clips())
    assert got.shape == (2, len(SPECIES)) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # different clips: a mix-up would show
    with pytest.raises(ValueError, match="takes 16 frames per video, not 8"):
        classifier.predict_proba([clip[:8] for clip in clips()])


def test_prediction_with_a_cached_export_never_imports_pytorch(checkpoint, tmp_path):
    sha = sha256_of(checkpoint)
    onnx_classifier.export_checked(checkpoint, onnx_classifier.onnx_stem(sha))
    np.save(tmp_path / "clips.npy", np.stack(clips()))
    code = f"""
import sys, json, numpy as np
from kifaru.models.checkpoint_info import read_checkpoint_info
from kifaru.models.runner import load_classifier
classifier = load_classifier(read_checkpoint_info({str(checkpoint)!r}), {sha!r}, "cpu")
probabilities = classifier.predict_proba(list(np.load({str(tmp_path / "clips.npy")!r})))
print(json.dumps({{"torch": "torch" in sys.modules, "p": probabilities.tolist()}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**__import__("os").environ}, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["torch"] is False
    np.testing.assert_allclose(out["p"], VideoClassifier.from_file(checkpoint).predict_proba(clips()), atol=1e-5)


def test_a_failed_export_says_why_and_pytorch_takes_over(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    tiny = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    with pytest.raises(RuntimeError, match="holds a TinyVideoNet, not a TimeDistributedEfficientNet"):
        onnx_classifier.export_in_child_process(tiny, tmp_path / "cache" / "x")  # the child's reason comes back

    info = read_checkpoint_info(tiny)
    monkeypatch.setattr(info, "model_class", onnx_classifier.MODEL_CLASS)

    def fail(*args):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(onnx_classifier, "ensure_export", fail)
    assert runner.choose_runtime(info, "0" * 64, "cpu") == runner.RuntimeChoice("pytorch", "exporter broke")
    assert runner.choose_runtime(info, "0" * 64, "cuda") == runner.RuntimeChoice("pytorch")  # ONNX is for the CPU
    monkeypatch.setattr(runner.VideoClassifier, "from_file", classmethod(lambda cls, path, device="cpu": SimpleNamespace(path=path)))
    classifier = load_classifier(info, "0" * 64, "cpu")
    assert classifier.path == tiny and classifier.runtime_choice == runner.RuntimeChoice("pytorch", "exporter broke")
    assert "ONNX Runtime cannot run" in caplog.text and "exporter broke" in caplog.text
    assert classifier.runtime_choice.describe() == "PyTorch (ONNX Runtime failed)"

    # An export that passed its check but whose sessions cannot be built: PyTorch, with that reason.
    monkeypatch.setattr(onnx_classifier, "load_onnx_time_distributed", fail)
    classifier = load_classifier(info, "0" * 64, "cpu", choice=runner.RuntimeChoice("onnxruntime"))
    assert classifier.runtime_choice == runner.RuntimeChoice("pytorch", "exporter broke")

    monkeypatch.setenv("KIFARU_CLASSIFIER_RUNTIME", "onnxruntime")
    with pytest.raises(RuntimeError, match="exporter broke"):
        load_classifier(info, "0" * 64, "cpu")
    monkeypatch.setenv("KIFARU_CLASSIFIER_RUNTIME", "pytorch")
    assert runner.choose_runtime(info, "0" * 64, "cpu") == runner.RuntimeChoice("pytorch")


# -- the export's check --------------------------------------------------------------------------


@pytest.fixture
def calibrated_checkpoint(tmp_path, monkeypatch):
    """A TimeDistributedEfficientNet of timm's tiny test_efficientnet (named in the checkpoint's
    hparams, as kifaru's own checkpoints of another backbone are), random weights with BatchNorm
    statistics calibrated on real photographs, as a trained network's are."""
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    model = time_distributed.TimeDistributedEfficientNet(len(SPECIES), backbone_name="test_efficientnet")
    model.load_state_dict(random_state_dict(model, seed=7))
    calibrate_batchnorm(model, photo_frames(32, 96, 160))
    path = tmp_path / "calibrated.ckpt"
    write_checkpoint(path, model, "TimeDistributedEfficientNet", SPECIES, {"num_frames": 16, "backbone_name": "test_efficientnet"})
    return path


def _logits(session_pair, model, clip):
    frames_session, head_session = session_pair
    features = frames_session.run(None, {"frames": onnx_classifier.frames_to_input(clip[None])})[0]
    got = head_session.run(None, {"features": features.reshape(1, model.num_frames, -1)})[0][0]
    with torch.inference_mode():
        expected = model(time_distributed.frames_to_input(torch.from_numpy(clip[None])))[0].numpy()
    return got, expected


def _sessions(frames_graph: bytes, head_graph: bytes):
    import onnxruntime

    return tuple(onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"]) for graph in (frames_graph, head_graph))


def test_export_of_a_batchnorm_calibrated_checkpoint_predicts_like_pytorch(calibrated_checkpoint):
    info = read_checkpoint_info(calibrated_checkpoint)
    sha = sha256_of(calibrated_checkpoint)
    onnx_classifier.export_checked(calibrated_checkpoint, onnx_classifier.onnx_stem(sha))
    classifier = load_classifier(info, sha, "cpu")
    assert classifier.runtime_choice == runner.RuntimeChoice("onnxruntime")
    # On frames the check never saw (photographs, another size): PyTorch's probabilities.
    photos = [photo_frames(16, 72, 128, seed=seed) for seed in (1, 2)]
    np.testing.assert_allclose(classifier.predict_proba(photos), VideoClassifier.from_file(calibrated_checkpoint).predict_proba(photos), atol=1e-5)


def test_the_check_rejects_a_wrong_export(calibrated_checkpoint, monkeypatch):
    import onnx
    from onnx import numpy_helper

    from kifaru.models.checkpoint import model_from_checkpoint, read_checkpoint

    model = model_from_checkpoint(read_checkpoint(calibrated_checkpoint))
    frames_graph, head_graph = onnx_classifier.export_graphs(model)
    onnx_classifier.check_export(model, frames_graph, head_graph)  # the right export passes

    def with_changed_weight(graph: bytes, value: float) -> bytes:
        """The graph with one weight of its first convolution (the stem's) set to ``value``."""
        proto = onnx.load_from_string(graph)
        first_conv = next(node for node in proto.graph.node if node.op_type == "Conv")
        initializer = next(i for i in proto.graph.initializer if i.name == first_conv.input[1])
        weights = numpy_helper.to_array(initializer).copy()
        weights.flat[0] = value
        initializer.CopyFrom(numpy_helper.from_array(weights, initializer.name))
        return proto.SerializeToString()

    with pytest.raises(RuntimeError, match="logits differ from PyTorch's by"):
        onnx_classifier.check_export(model, with_changed_weight(frames_graph, 1.0), head_graph)
    with pytest.raises(RuntimeError, match="exported network's logits on the probe clip are not finite"):
        onnx_classifier.check_export(model, with_changed_weight(frames_graph, float("inf")), head_graph)
    # Frames normalised without ImageNet's standard deviations.
    mean = np.asarray(onnx_classifier.IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
    wrong = lambda clips: np.ascontiguousarray(clips.reshape(-1, *clips.shape[-3:]).transpose(0, 3, 1, 2) / np.float32(255) - mean)
    monkeypatch.setattr(onnx_classifier, "frames_to_input", wrong)
    with pytest.raises(RuntimeError, match="logits differ from PyTorch's by"):
        onnx_classifier.check_export(model, frames_graph, head_graph)
    monkeypatch.undo()
    with torch.no_grad():
        model.classifier[-1].weight[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="PyTorch's own logits .* are not finite"):
        onnx_classifier.check_export(model, frames_graph, head_graph)


def test_the_real_architecture_calibrated_exports_and_noise_is_no_probe():
    """zamba's EfficientNetV2-M with BatchNorm statistics from photographs: the export passes its
    check, agrees with PyTorch on photographs, and on uniform pixel noise (the old probe) the
    network's logits explode and the two runtimes disagree by their own size, graphs alike."""
    model = time_distributed.TimeDistributedEfficientNet(len(SPECIES))
    model.load_state_dict(random_state_dict(model, seed=7))
    calibrate_batchnorm(model, photo_frames(32, 96, 160))
    frames_graph, head_graph = onnx_classifier.export_graphs(model)
    onnx_classifier.check_export(model, frames_graph, head_graph)
    sessions = _sessions(frames_graph, head_graph)
    got, expected = _logits(sessions, model, photo_frames(16, 96, 160, seed=5))
    scale = max(1.0, np.abs(expected).max())
    assert np.abs(got - expected).max() <= onnx_classifier._MAX_RELATIVE_LOGIT_DIFF * scale
    noise = np.random.default_rng(0).integers(0, 256, (16, 96, 160, 3), dtype=np.uint8)
    got, expected = _logits(sessions, model, noise)
    assert np.abs(expected).max() > 100  # 1e3 measured; on photographs below 1
    assert np.abs(got - expected).max() > onnx_classifier._MAX_RELATIVE_LOGIT_DIFF * np.abs(expected).max()


def test_numpy_input_transform_is_pytorchs():
    clip = random_frames(3, height=40, width=56)[None]
    expected = time_distributed.frames_to_input(torch.from_numpy(clip)).reshape(-1, 3, 40, 56).numpy()
    np.testing.assert_array_equal(onnx_classifier.frames_to_input(clip), expected)
