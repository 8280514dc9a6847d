"""SlowFast against zamba 2.7.2's, on the same seeded random weights and clips.

The reference outputs come from zamba's own model in its venv (benchmarks/zamba_model_reference.py ->
the "slowfast" entry of tests/fixtures/zamba_models/reference.json): built with the official
slowfast hyper-parameters, filled by tests/models/random_checkpoint.py, saved with zamba's
``to_disk`` and loaded back with its ``from_disk``. The network is heavy (ResNet-50 on 32 frames):
the clips are about the smallest it takes, 200x264, and it runs once, on both clips together.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kifaru.exceptions import CheckpointError
from kifaru.models.checkpoint import VideoModelCheckpoint, model_from_checkpoint, read_checkpoint, write_checkpoint
from kifaru.models.slowfast import FEATURES, SlowFast, frames_to_input
from tests.models.random_checkpoint import random_frames, random_state_dict, write_as_zamba_to_disk

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "zamba_models" / "reference.json").read_text())["slowfast"]
SPECIES = REFERENCE["species"]
HEAD_FIELDS = (
    "backbone_mode", "post_backbone_dropout", "head_dropout_rate", "head_hidden_layer_sizes", "output_with_global_average"
)


def _clip(seed: int) -> torch.Tensor:
    frames, height, width, _ = REFERENCE["clip_shape"]
    return torch.from_numpy(random_frames(seed, frames=frames, height=height, width=width))


@pytest.fixture(scope="module")
def clips_input() -> list[torch.Tensor]:
    """Both reference clips as one batch."""
    return frames_to_input(torch.stack([_clip(clip["seed"]) for clip in REFERENCE["clips"]]))


@pytest.fixture(scope="module")
def seeded_weights() -> dict[str, torch.Tensor]:
    return random_state_dict(SlowFast(num_classes=len(SPECIES)), REFERENCE["weight_seed"])


def _index_clip(length: int) -> torch.Tensor:
    """Frame t has every pixel t."""
    return torch.arange(length, dtype=torch.uint8).view(length, 1, 1, 1).expand(length, 2, 2, 3)


def _sources(pathway: torch.Tensor) -> list[int]:
    """Which source frame each frame of a pathway (3, T, H, W) holds; -1 for padding."""
    first_pixel = pathway[0, :, 0, 0]
    pixel = (first_pixel * 0.225 + 0.45) * 255
    return [-1 if float(v) == 0.0 else round(float(p)) for v, p in zip(first_pixel, pixel)]


@pytest.mark.parametrize("length", sorted(REFERENCE["pathway_sources"], key=int))
def test_padding_and_pathways_are_zambas(length):
    """Padding to 32 frames (the larger half before the clip) and the slow pathway's frames, as
    zamba's transform placed them for the same index-coded clip; a batch gives the same."""
    frames = _index_clip(int(length))
    slow, fast = frames_to_input(frames)
    assert [_sources(slow), _sources(fast)] == REFERENCE["pathway_sources"][length]
    batch = frames_to_input(torch.stack([frames, frames]))
    for single, batched in zip((slow, fast), batch):
        assert torch.equal(batched[1], single)


def test_input_transform_is_zambas(clips_input):
    slow, fast = clips_input
    for i, clip in enumerate(REFERENCE["clips"]):
        assert list(slow[i].shape) == clip["slow_shape"] and list(fast[i].shape) == clip["fast_shape"]
        assert float(fast[i].mean()) == pytest.approx(clip["fast_mean"], abs=1e-6)
        assert float(fast[i].std()) == pytest.approx(clip["fast_std"], abs=1e-6)
        assert float(slow[i].mean()) == pytest.approx(clip["slow_mean"], abs=1e-6)


def test_state_dict_has_zambas_names_and_shapes():
    model = SlowFast(num_classes=len(SPECIES))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == REFERENCE["state_dict_shapes"]
    assert list(ours) == list(REFERENCE["state_dict_shapes"])  # zamba's order too
    # The last stage is held twice, as zamba holds it (one tensor, two names).
    assert model.backbone[0] is model.base.blocks[4]


def test_same_outputs_as_zamba_through_a_checkpoint(tmp_path, clips_input, seeded_weights):
    """kifaru's checkpoint writer and reader, and the network: zamba's logits to 1e-4."""
    model = SlowFast(num_classes=len(SPECIES))
    model.load_state_dict(seeded_weights)
    path = tmp_path / "slowfast.ckpt"
    hparams = {k: REFERENCE["hyper_parameters"][k] for k in HEAD_FIELDS}
    write_checkpoint(path, model, "SlowFast", SPECIES, hparams | {"lr": 0.001})
    assert sorted(torch.load(path, weights_only=True)) == REFERENCE["checkpoint_top_keys"]

    checkpoint = read_checkpoint(path)
    assert (checkpoint.model_class, checkpoint.species) == ("SlowFast", SPECIES)
    loaded = model_from_checkpoint(checkpoint)
    assert not loaded.training
    with torch.inference_mode():
        logits = loaded(clips_input)
    for i, clip in enumerate(REFERENCE["clips"]):
        np.testing.assert_allclose(logits[i].numpy(), clip["logits"], atol=1e-4)
        np.testing.assert_allclose(torch.sigmoid(logits[i]).numpy(), clip["probabilities"], atol=1e-4)
    # The two clips give different outputs: the comparison above can tell inputs apart.
    first, second = (np.array(clip["logits"]) for clip in REFERENCE["clips"])
    assert np.abs(first - second).max() > 1e-3


def test_checkpoint_file_in_zambas_to_disk_format_loads_unchanged(seeded_weights, tmp_path):
    """A file as zamba's ``to_disk`` writes it (Lightning's AttributeDict inside; made here the
    way zamba makes it, as the real one is hundreds of MB), with the hyper-parameters zamba's
    reference run recorded, gives every tensor the seeded value: the weights whose logits the
    test above compares (not run again here, to keep the file quick)."""
    path = tmp_path / "slowfast_random.ckpt"
    write_as_zamba_to_disk(path, seeded_weights, {**REFERENCE["hyper_parameters"], "scheduler": None})
    assert sorted(torch.load(path, weights_only=False)) == REFERENCE["checkpoint_top_keys"]
    checkpoint = read_checkpoint(path)
    assert checkpoint.species == SPECIES
    assert checkpoint.hyper_parameters["post_backbone_dropout"] == 0.0
    model = model_from_checkpoint(checkpoint)
    assert model.head.dropout is not None and model.head.dropout.p == 0.0  # as zamba built it
    state = model.state_dict()
    assert state.keys() == seeded_weights.keys()
    assert all(torch.equal(state[k], seeded_weights[k]) for k in state)


def _checkpoint(state_dict: dict, **hparams) -> VideoModelCheckpoint:
    hparams = {"model_class": "SlowFast", **hparams}
    return VideoModelCheckpoint(Path("slowfast.ckpt"), "SlowFast", list(SPECIES), state_dict, hparams)


def test_hidden_layers_are_numbered_as_zambas():
    """zamba's MLP head: Linear, ReLU[, Dropout] per hidden layer, then the output Linear."""
    with_dropout = SlowFast(len(SPECIES), head_hidden_layer_sizes=[64, 16], head_dropout_rate=0.3)
    assert [k for k in with_dropout.state_dict() if k.startswith("head.")] == [
        f"head.proj.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")
    ]
    assert with_dropout.head.proj[0].in_features == FEATURES
    without = SlowFast(len(SPECIES), head_hidden_layer_sizes=[64, 16])
    assert [k for k in without.state_dict() if k.endswith("weight") and k.startswith("head.")] == [
        "head.proj.0.weight", "head.proj.2.weight", "head.proj.4.weight"
    ]
    loaded = model_from_checkpoint(
        _checkpoint(with_dropout.state_dict(), head_hidden_layer_sizes=[64, 16], head_dropout_rate=0.3)
    )
    assert loaded.head.proj[6].out_features == len(SPECIES)


def test_hparams_that_do_not_fit_the_weights_raise_checkpoint_error():
    state = SlowFast(len(SPECIES)).state_dict()
    with pytest.raises(CheckpointError, match="tensors missing .*head.proj.0.bias.*tensors unexpected .*head.proj.bias"):
        model_from_checkpoint(_checkpoint(state, head_hidden_layer_sizes=[64]))
    wrong_species = VideoModelCheckpoint(Path("slowfast.ckpt"), "SlowFast", ["cat", "dog"], state, {"model_class": "SlowFast"})
    with pytest.raises(CheckpointError, match="2 species: 2 tensors of another shape"):
        model_from_checkpoint(wrong_species)


def test_bad_inputs_are_refused_before_running():
    model = SlowFast(num_classes=2).eval()
    longer = frames_to_input(torch.zeros(40, 200, 200, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="takes 32 frames per video .*not 40"):
        model([p.unsqueeze(0) for p in longer])
    small = frames_to_input(torch.zeros(1, 32, 192, 400, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 193x193 pixels, not \\(192, 400\\)"):
        model(small)
    with pytest.raises(ValueError, match="backbone_mode"):
        SlowFast(num_classes=2, backbone_mode="frozen")


def test_eval_backbone_mode_keeps_the_base_in_inference_mode(monkeypatch):
    """backbone_mode 'eval' (a frozen feature extractor): the base's BatchNorm never trains."""
    model = SlowFast(num_classes=2, backbone_mode="eval").train()
    monkeypatch.setattr(model.base, "forward", lambda x: torch.zeros(1, FEATURES, 1, 1, 1))
    frames = frames_to_input(torch.zeros(1, 32, 200, 200, 3, dtype=torch.uint8))
    assert model(frames).shape == (1, 2)
    assert not model.base.training and model.head.training
