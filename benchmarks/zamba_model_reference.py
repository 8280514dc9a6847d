"""zamba 2.7.2's video models on random weights: the reference outputs kifaru's models must match.

Runs in zamba's venv (see zamba_setup.sh), offline:

    HF_HUB_OFFLINE=1 /path/to/zamba-venv/bin/python benchmarks/zamba_model_reference.py

For time_distributed, european and blank_nonblank (TimeDistributedEfficientNet with each official
model's species), it builds zamba's own model, fills it with the seeded weights of
tests/models/random_checkpoint.py, saves it with zamba's ``to_disk`` (the minimal checkpoint form),
loads that file back with zamba's ``from_disk``, and records for two seeded clips the transformed
input's statistics, the logits and the probabilities (sigmoid, as ``zamba predict``), plus the
checkpoint's keys, shapes and hyper-parameters. It does the same for SlowFast (the official
slowfast hyper-parameters, weight seed 4) on 32-frame clips of 200x264 (the smallest sizes its
network takes are 32 frames and 193 pixels a side; 200x264 leaves 1x3 pooling windows, as real
frames leave several), and records which source frame lands where in each pathway of zamba's
SlowFast transform for clips of several lengths. Writes tests/fixtures/zamba_models/reference.json
(the SlowFast results under "slowfast"); the checkpoints themselves (hundreds of MB) go to
bench-out/zamba_models/.

zamba's timm backbone asks the model hub for ImageNet weights even when weights are loaded
afterwards; this script puts a random safetensors file for ``timm/efficientnetv2_rw_m.agc_in1k``
in the hub cache first, so nothing is downloaded. zamba's SlowFast gets pytorchvideo's
``slowfast_r50`` from GitHub through ``torch.hub.load("facebookresearch/pytorchvideo:0.1.3", ...)``;
this script answers that call with the installed pytorchvideo's own ``slowfast_r50`` without
Kinetics weights (the network code is the same in pytorchvideo 0.1.3 and 0.1.5; the weights are
replaced anyway).
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "models"))
from random_checkpoint import random_frames, random_state_dict  # noqa: E402

MODELS = {"time_distributed": 1, "european": 2, "blank_nonblank": 3}  # name -> weight seed
CLIP_SEEDS = (11, 12)
HUB_REPO = "timm/efficientnetv2_rw_m.agc_in1k"
SLOWFAST_SEED = 4
SLOWFAST_CLIP = {"frames": 32, "height": 200, "width": 264}
# Clip lengths whose pathway layout is recorded: padded (odd and even), exact, longer.
PATHWAY_LENGTHS = (1, 8, 29, 30, 32, 40)


def fake_hub_weights() -> None:
    """Random ImageNet weights for timm's pretrained download, in the hub cache layout."""
    import timm
    from huggingface_hub.constants import HF_HUB_CACHE
    from safetensors.torch import save_file

    folder = Path(HF_HUB_CACHE) / ("models--" + HUB_REPO.replace("/", "--"))
    commit = "0" * 40
    target = folder / "snapshots" / commit / "model.safetensors"
    if target.exists():
        return
    model = timm.create_model("efficientnetv2_rw_m", pretrained=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)


@contextmanager
def offline_pytorchvideo_hub() -> Iterator[None]:
    """``torch.hub.load`` answered by the installed pytorchvideo, without Kinetics weights."""
    import pytorchvideo.models.hub

    def load(repo: str, model: str, pretrained: bool = False, **kwargs):
        assert repo.startswith("facebookresearch/pytorchvideo"), repo
        return getattr(pytorchvideo.models.hub, model)(pretrained=False, **kwargs)

    original = torch.hub.load
    torch.hub.load = load
    try:
        yield
    finally:
        torch.hub.load = original


def pathway_sources(transform: Callable[[torch.Tensor], list[torch.Tensor]], length: int) -> list[list[int]]:
    """For a clip whose frame t has every pixel t, the source frame of each pathway frame (-1:
    padding, which is 0 after normalisation)."""
    frames = torch.arange(length, dtype=torch.uint8).view(length, 1, 1, 1).expand(length, 2, 2, 3).contiguous()
    sources = []
    for pathway in transform(frames):
        first_pixel = pathway[0, :, 0, 0]
        pixel = (first_pixel * 0.225 + 0.45) * 255
        sources.append([-1 if float(v) == 0.0 else int(round(float(p))) for v, p in zip(first_pixel, pixel)])
    return sources


def slowfast_reference(out_dir: Path) -> dict:
    from zamba.models.config import MODEL_MAPPING
    from zamba.models.slowfast_models import SlowFast

    transform = MODEL_MAPPING["SlowFast"]["transform"]
    hparams = official("slowfast")
    head_fields = (
        "backbone_mode", "post_backbone_dropout", "head_dropout_rate", "head_hidden_layer_sizes", "output_with_global_average"
    )
    path = out_dir / "slowfast_random.ckpt"
    with offline_pytorchvideo_hub():
        model = SlowFast(species=hparams["species"], **{k: hparams[k] for k in head_fields})
        model.load_state_dict(random_state_dict(model, SLOWFAST_SEED))
        model.to_disk(path)
        loaded = SlowFast.from_disk(path).eval()
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    clips = []
    for clip_seed in CLIP_SEEDS:
        slow, fast = transform(torch.from_numpy(random_frames(clip_seed, **SLOWFAST_CLIP)))
        with torch.no_grad():
            logits = loaded([slow.unsqueeze(0), fast.unsqueeze(0)])[0]  # a batch, as zamba's loader collates it
        clips.append(
            {
                "seed": clip_seed,
                "slow_shape": list(slow.shape),
                "fast_shape": list(fast.shape),
                "fast_mean": float(fast.mean()),
                "fast_std": float(fast.std()),
                "slow_mean": float(slow.mean()),
                "logits": [float(v) for v in logits],
                "probabilities": [float(v) for v in torch.sigmoid(logits)],
            }
        )
    hyper_parameters = dict(checkpoint["hyper_parameters"])
    return {
        "weight_seed": SLOWFAST_SEED,
        "species": hparams["species"],
        "clip_shape": [SLOWFAST_CLIP["frames"], SLOWFAST_CLIP["height"], SLOWFAST_CLIP["width"], 3],
        "checkpoint_top_keys": sorted(checkpoint),
        "hyper_parameters": {k: v for k, v in hyper_parameters.items() if k != "scheduler"}
        | {"scheduler": str(hyper_parameters.get("scheduler"))},
        "state_dict_shapes": {k: list(v.shape) for k, v in checkpoint["state_dict"].items()},
        "clips": clips,
        "pathway_sources": {str(n): pathway_sources(transform, n) for n in PATHWAY_LENGTHS},
    }


def official(name: str) -> dict:
    import zamba

    return yaml.safe_load((Path(zamba.__file__).parent / "models" / "official_models" / name / "hparams.yaml").read_text())


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    fake_hub_weights()
    import zamba
    from zamba.models.config import MODEL_MAPPING
    from zamba.models.efficientnet_models import TimeDistributedEfficientNet

    transform = MODEL_MAPPING["TimeDistributedEfficientNet"]["transform"]
    out_dir = ROOT / "bench-out" / "zamba_models"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result = {
        "meta": {
            "zamba_version": zamba.__version__,
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "generated_by": "HF_HUB_OFFLINE=1 /path/to/zamba-venv/bin/python benchmarks/zamba_model_reference.py",
            "clip_seeds": list(CLIP_SEEDS),
            "clip_shape": list(random_frames(CLIP_SEEDS[0]).shape),
        },
        "models": {},
    }
    for name, seed in MODELS.items():
        hparams = official(name)
        model = TimeDistributedEfficientNet(species=hparams["species"], num_frames=hparams["num_frames"])
        model.load_state_dict(random_state_dict(model, seed))
        path = out_dir / f"{name}_random.ckpt"
        model.to_disk(path)
        loaded = TimeDistributedEfficientNet.from_disk(path).eval()
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        clips = []
        for clip_seed in CLIP_SEEDS:
            x = transform(torch.from_numpy(random_frames(clip_seed)))
            with torch.no_grad():
                logits = loaded(x.unsqueeze(0))[0]
            clips.append(
                {
                    "seed": clip_seed,
                    "input_mean": float(x.mean()),
                    "input_std": float(x.std()),
                    "input_sample": [float(v) for v in x.flatten()[::9973]],
                    "logits": [float(v) for v in logits],
                    "probabilities": [float(v) for v in torch.sigmoid(logits)],
                }
            )
        result["models"][name] = {
            "weight_seed": seed,
            "species": hparams["species"],
            "checkpoint_top_keys": sorted(checkpoint),
            "hyper_parameters": {k: v for k, v in dict(checkpoint["hyper_parameters"]).items() if k != "scheduler"}
            | {"scheduler": str(checkpoint["hyper_parameters"].get("scheduler"))},
            # All three share the network; the first lists every tensor, the others their head.
            "state_dict_shapes": {
                k: list(v.shape)
                for k, v in checkpoint["state_dict"].items()
                if not result["models"] or k.startswith("classifier.")
            },
            "clips": clips,
        }
        print(f"{name}: {len(checkpoint['state_dict'])} tensors, logits[:3] {clips[0]['logits'][:3]}", file=sys.stderr)
    result["slowfast"] = slowfast = slowfast_reference(out_dir)
    first = slowfast["clips"][0]["logits"][:3]
    print(f"slowfast: {len(slowfast['state_dict_shapes'])} tensors, logits[:3] {first}", file=sys.stderr)
    result["meta"]["seconds"] = round(time.time() - started, 1)
    fixture = ROOT / "tests" / "fixtures" / "zamba_models" / "reference.json"
    fixture.parent.mkdir(parents=True, exist_ok=True)
    fixture.write_text(json.dumps(result, separators=(",", ":"), default=str))
    print(f"wrote {fixture}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
