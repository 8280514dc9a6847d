"""Random weights that are the same on every machine, for zamba-compatibility fixtures.

zamba's official checkpoints cannot be downloaded here, and a random-weight checkpoint of the real
architecture is hundreds of megabytes, too big to keep in the repository. Instead both sides build
it: ``benchmarks/zamba_model_reference.py`` fills zamba's own model with :func:`random_state_dict`
in zamba's venv and records its outputs, and the tests fill kifaru's model the same way and compare.
Only numpy's seeded generator (the same numbers across numpy versions) and torch are used, so this
file also runs in zamba's venv.

The values are scaled so that activations keep their size through the network (LeCun-scaled
weights, BatchNorm statistics near 1): the logits come out near 1 and depend on the input, so a
wrong weight shows. (He scaling makes EfficientNet's logits explode to ~1e10.)
"""

from __future__ import annotations

import math

import numpy as np
import torch


def random_state_dict(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A full state dict for ``module`` with seeded random values. Names that share one tensor in
    ``module`` (zamba's TimeDistributedEfficientNet holds its last blocks twice) get one value."""
    rng = np.random.default_rng(seed)
    tensors = module.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}
    for name, tensor in tensors.items():
        groups.setdefault(id(tensor), []).append(name)
    out = {}
    for names in sorted(sorted(group) for group in groups.values()):
        value = _random_value(names[0], tensors[names[0]], rng)
        for name in names:
            out[name] = value
    return out


def _random_value(name: str, tensor: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor.detach().clone()
    shape = tuple(tensor.shape)
    if name.endswith("running_var"):
        values = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("running_mean"):
        values = rng.normal(0.0, 0.1, shape)
    elif tensor.ndim == 1 and name.endswith("weight"):  # BatchNorm scale
        values = rng.uniform(0.8, 1.2, shape)
    elif tensor.ndim == 1:  # biases
        values = rng.normal(0.0, 0.05, shape)
    else:  # convolutions and linear layers: LeCun-scaled
        fan_in = math.prod(shape[1:])
        values = rng.normal(0.0, math.sqrt(1.0 / fan_in), shape)
    return torch.from_numpy(values.astype(np.float32))


def random_frames(seed: int, frames: int = 16, height: int = 64, width: int = 112) -> np.ndarray:
    """A clip of uint8 RGB frames (T, H, W, 3): smooth shapes plus noise, different per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        centre = rng.uniform(0, 1, 2) * (height, width)
        blob = 255 * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * (height / 5) ** 2))
        for c in range(3):
            clip[t, :, :, c] = np.clip(blob * rng.uniform(0.3, 1) + rng.normal(0, 20, (height, width)), 0, 255)
    return clip


# zamba's to_disk hparams for its random time_distributed checkpoint (zamba_model_reference.py).
TIME_DISTRIBUTED_HPARAMS = {"lr": 0.001, "num_frames": 16, "scheduler": None, "scheduler_params": None}


def write_random_time_distributed(path, species: list[str], seed: int):
    """kifaru's copy of the seeded random time_distributed checkpoint (zamba's format) at ``path``.
    Needs kifaru (imported here, so that this file still runs in zamba's venv)."""
    from kifaru.models.checkpoint import write_checkpoint
    from kifaru.models.time_distributed import TimeDistributedEfficientNet

    model = TimeDistributedEfficientNet(num_classes=len(species), num_frames=TIME_DISTRIBUTED_HPARAMS["num_frames"])
    model.load_state_dict(random_state_dict(model, seed))
    write_checkpoint(path, model, "TimeDistributedEfficientNet", species, TIME_DISTRIBUTED_HPARAMS)
    return path


def write_as_zamba_to_disk(path, state_dict: dict[str, torch.Tensor], hyper_parameters: dict) -> None:
    """A checkpoint file as zamba 2.7.2's ``to_disk`` writes one (zamba/pytorch_lightning/
    base_module.py): these four keys, the hyper-parameters as the LightningModule holds them
    (Lightning's AttributeDict, pickled by class name), no optimizer or callback state.
    Needs Lightning (a kifaru dependency, and zamba's)."""
    import pytorch_lightning as pl

    module = pl.LightningModule()
    module.save_hyperparameters(dict(hyper_parameters))  # the AttributeDict zamba's module saves
    checkpoint = {
        "state_dict": state_dict,
        "hyper_parameters": module.hparams,
        "global_step": 0,
        "pytorch-lightning_version": pl.__version__,
    }
    torch.save(checkpoint, path)


def photo_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``count`` uint8 RGB frames (count, H, W, 3) cut from scikit-image's sample photographs
    (a cat, an astronaut, coffee, a rocket...): real images' statistics, deterministic. Each frame
    is a random crop of one photo, resized, some darker or lighter (night, overcast, sun)."""
    import cv2
    from skimage import data

    photos = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.immunohistochemistry(), data.cat()]
    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        crop_h = int(h * rng.uniform(0.6, 1.0))
        crop_w = min(w, int(crop_h * width / height))
        top, left = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
        frame = cv2.resize(photo[top : top + crop_h, left : left + crop_w], (width, height), interpolation=cv2.INTER_AREA)
        out[i] = np.clip(frame.astype(np.float32) * rng.uniform(0.5, 1.3), 0, 255).astype(np.uint8)
    return out


def calibrate_batchnorm(model: torch.nn.Module, frames: np.ndarray, batch: int = 16) -> None:
    """Set every BatchNorm's running statistics of ``model.base.module`` (a TimeDistributedEfficientNet's
    per-frame network) to the exact mean and variance of its inputs over ``frames`` (uint8,
    (N, H, W, 3)), as training on real frames leaves them: cumulative averages (momentum None)
    in train mode, the weights untouched. Random weights with such statistics behave like a trained
    network's on inputs far from real frames (their activations explode there)."""
    from kifaru.models.time_distributed import frames_to_input

    network = model.base.module
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    network.train()
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            network(frames_to_input(torch.from_numpy(frames[start : start + batch])))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
