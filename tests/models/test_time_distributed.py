"""TimeDistributedEfficientNet against zamba 2.7.2's, on the same seeded random weights and clips.

The reference outputs come from zamba's own model in its venv (benchmarks/zamba_model_reference.py ->
tests/fixtures/zamba_models/reference.json): built with each official model's species, filled by
tests/models/random_checkpoint.py, saved with zamba's ``to_disk`` and loaded back with its ``from_disk``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kifaru.models.checkpoint import model_from_checkpoint, read_checkpoint, write_checkpoint
from kifaru.models.time_distributed import TimeDistributedEfficientNet, frames_to_input
from tests.models.random_checkpoint import random_frames, random_state_dict, write_as_zamba_to_disk

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "zamba_models" / "reference.json").read_text())
MODELS = REFERENCE["models"]


def _clip_input(seed: int) -> torch.Tensor:
    return frames_to_input(torch.from_numpy(random_frames(seed))).unsqueeze(0)


def test_input_transform_is_zambas():
    for clip in MODELS["time_distributed"]["clips"]:
        x = _clip_input(clip["seed"])[0]
        assert x.shape == (16, 3, 64, 112) and x.dtype == torch.float32
        assert float(x.mean()) == pytest.approx(clip["input_mean"], abs=1e-6)
        assert float(x.std()) == pytest.approx(clip["input_std"], abs=1e-6)
        np.testing.assert_allclose(x.flatten()[::9973].numpy(), clip["input_sample"], atol=1e-6)


def test_state_dict_has_zambas_names_and_shapes():
    reference = MODELS["time_distributed"]["state_dict_shapes"]
    model = TimeDistributedEfficientNet(num_classes=32)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == reference
    # The last blocks are held twice, as zamba holds them (one tensor, two names).
    assert model.backbone[1].weight is model.base.module.conv_head.weight


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_outputs_as_zamba_through_a_checkpoint(name, tmp_path):
    """kifaru's checkpoint writer and reader, and the network: zamba's logits to 1e-4."""
    reference = MODELS[name]
    species = reference["species"]
    model = TimeDistributedEfficientNet(num_classes=len(species))
    model.load_state_dict(random_state_dict(model, reference["weight_seed"]))
    path = tmp_path / f"{name}.ckpt"
    write_checkpoint(path, model, "TimeDistributedEfficientNet", species, {"num_frames": 16, "lr": 0.001})

    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == reference["checkpoint_top_keys"]
    for key, shape in reference["state_dict_shapes"].items():
        assert list(raw["state_dict"][key].shape) == shape, key

    checkpoint = read_checkpoint(path)
    assert (checkpoint.model_class, checkpoint.species) == ("TimeDistributedEfficientNet", species)
    loaded = model_from_checkpoint(checkpoint)
    assert not loaded.training
    for clip in reference["clips"]:
        with torch.inference_mode():
            logits = loaded(_clip_input(clip["seed"]))[0]
        np.testing.assert_allclose(logits.numpy(), clip["logits"], atol=1e-4)
        np.testing.assert_allclose(torch.sigmoid(logits).numpy(), clip["probabilities"], atol=1e-4)
    # The two clips give different outputs: the comparison above can tell weights apart.
    first, second = (np.array(clip["logits"]) for clip in reference["clips"])
    assert np.abs(first - second).max() > 1e-3


def test_checkpoint_file_in_zambas_to_disk_format_loads_unchanged(tmp_path):
    """A file as zamba's ``to_disk`` writes it (Lightning's AttributeDict inside, zamba's four keys;
    made here the way zamba makes it, as the real one is 200 MB), with the weights and
    hyper-parameters zamba's reference run had: zamba's logits to 1e-4, as above."""
    reference = MODELS["time_distributed"]
    model = TimeDistributedEfficientNet(num_classes=len(reference["species"]))
    hyper_parameters = {**reference["hyper_parameters"], "scheduler": None, "species": reference["species"]}
    path = tmp_path / "time_distributed_random.ckpt"
    write_as_zamba_to_disk(path, random_state_dict(model, reference["weight_seed"]), hyper_parameters)
    assert sorted(torch.load(path, weights_only=False)) == reference["checkpoint_top_keys"]

    checkpoint = read_checkpoint(path)
    assert checkpoint.species == reference["species"] and checkpoint.model_class == "TimeDistributedEfficientNet"
    assert type(checkpoint.hyper_parameters) is dict and checkpoint.hyper_parameters["num_frames"] == 16
    clip = reference["clips"][0]
    with torch.inference_mode():
        logits = model_from_checkpoint(checkpoint)(_clip_input(clip["seed"]))[0]
    np.testing.assert_allclose(logits.numpy(), clip["logits"], atol=1e-4)


def test_wrong_number_of_frames_is_refused():
    model = TimeDistributedEfficientNet(num_classes=2, num_frames=4).eval()
    with pytest.raises(ValueError, match="takes 4 frames per video, not 3"):
        model(torch.zeros(1, 3, 3, 32, 32))


def test_predicting_takes_frames_in_chunks_with_the_same_outputs(monkeypatch):
    """Eval mode without gradients: the backbone sees INFERENCE_FRAMES_PER_CALL frames at a time
    (bounding memory), and gives what one call on every frame gives, since eval-mode BatchNorm
    uses its stored statistics. With gradients (training) every frame goes in one call."""
    import torch
    from torch import nn

    from kifaru.models import time_distributed

    calls = []

    class Backbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.norm = nn.BatchNorm2d(4)
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)

        def forward(self, x):
            calls.append(len(x))
            return self.norm(self.conv(x)).mean(dim=(2, 3))

    torch.manual_seed(0)
    wrapped = time_distributed._TimeDistributed(Backbone()).eval()
    clips = torch.rand(2, 10, 3, 8, 8)  # 20 frames
    monkeypatch.setattr(time_distributed, "INFERENCE_FRAMES_PER_CALL", 8)
    with torch.no_grad():
        chunked = wrapped(clips)
    assert calls == [8, 8, 4]
    calls.clear()
    monkeypatch.setattr(time_distributed, "INFERENCE_FRAMES_PER_CALL", 100)
    with torch.no_grad():
        whole = wrapped(clips)
    assert calls == [20]
    # The same arithmetic on the same frames: equal up to float32 summation order in the kernel.
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    calls.clear()
    monkeypatch.setattr(time_distributed, "INFERENCE_FRAMES_PER_CALL", 8)
    wrapped(clips)  # gradients on: one call
    assert calls == [20] and chunked.shape == (2, 10, 4)
