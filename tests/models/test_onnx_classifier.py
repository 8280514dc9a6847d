"""TimeDistributedEfficientNet in ONNX Runtime: the same probabilities as PyTorch, exported once per
checkpoint in a child process, a fallback to PyTorch, and prediction without importing PyTorch.

The network is the real TimeDistributedEfficientNet with timm's tiny ``test_efficientnet`` as its
backbone, so that exporting takes seconds (the official backbone's export takes about a minute).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kifaru.models import onnx_classifier, runner, time_distributed
from kifaru.models.checkpoint import write_checkpoint
from kifaru.models.checkpoint_info import read_checkpoint_info
from kifaru.models.download import sha256_of
from kifaru.models.runner import VideoClassifier, load_classifier
from tests.models.random_checkpoint import random_frames, random_state_dict
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

    monkeypatch.setattr(onnx_classifier, "load_onnx_time_distributed", fail)
    monkeypatch.setattr(runner.VideoClassifier, "from_file", classmethod(lambda cls, path, device="cpu": ("torch", path)))
    assert load_classifier(info, "0" * 64, "cpu") == ("torch", tiny)
    assert "ONNX Runtime cannot run" in caplog.text and "exporter broke" in caplog.text
    monkeypatch.setenv("KIFARU_CLASSIFIER_RUNTIME", "onnxruntime")
    with pytest.raises(RuntimeError, match="exporter broke"):
        load_classifier(info, "0" * 64, "cpu")


def test_numpy_input_transform_is_pytorchs():
    clip = random_frames(3, height=40, width=56)[None]
    expected = time_distributed.frames_to_input(torch.from_numpy(clip)).reshape(-1, 3, 40, 56).numpy()
    np.testing.assert_array_equal(onnx_classifier.frames_to_input(clip), expected)
