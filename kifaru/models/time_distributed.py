"""TimeDistributedEfficientNet: zamba's frame-by-frame video classifier, with zamba's parameter names.

The architecture of zamba's time_distributed, european and blank_nonblank models (spec section 4):
timm's ``efficientnetv2_rw_m`` without its classifier (2152 features) runs on every frame, and a
small head turns the 16 frames' features into one logit per species (multi-label: a sigmoid each).

The module layout reproduces zamba's state dict exactly, so its checkpoints load unchanged:
``base.module.*`` is the EfficientNet (zamba wraps it in a ``TimeDistributed``), ``backbone.0..3``
are the same last layers again (zamba lists them to unfreeze them when fine-tuning: the state
dict holds those tensors twice), ``classifier.*`` is the head.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from kifaru.models.normalization import IMAGENET_MEAN, IMAGENET_STD

BACKBONE_NAME = "efficientnetv2_rw_m"
# Frames the backbone takes at once when predicting (eval mode, no gradients). Its activations set
# a predicting process's peak memory: measured by benchmarks/classifier_memory.py (docs/benchmarks.md)
# with a batch of 2 clips x 16 frames at 240x426, the peak RSS is 1541 MiB in one call, 1225 MiB
# 8 frames at a time, 1073 MiB 4 at a time (889 MiB of it is PyTorch and the loaded model), at no
# loss of speed: a convolution on 4 frames still keeps both cores busy.
INFERENCE_FRAMES_PER_CALL = 4


class _TimeDistributed(nn.Module):
    """Holds the per-frame network under ``module`` (zamba's parameter names)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[:2]
        flat = x.reshape(batch * frames, *x.shape[2:])
        # Predicting: a few frames at a time, which bounds memory and changes nothing else, since
        # eval-mode BatchNorm normalises each frame by its stored statistics. Training keeps every
        # frame in one call: train-mode BatchNorm normalises over the batch, and the activations
        # are kept for the backward pass whatever the split.
        if self.training or torch.is_grad_enabled() or len(flat) <= INFERENCE_FRAMES_PER_CALL:
            features = self.module(flat)
        else:
            features = torch.cat([self.module(part) for part in flat.split(INFERENCE_FRAMES_PER_CALL)])
        return features.reshape(batch, frames, *features.shape[1:])


class TimeDistributedEfficientNet(nn.Module):
    """``forward``: (batch, frames, 3, H, W) normalised floats -> (batch, species) logits."""

    def __init__(
        self, num_classes: int, num_frames: int = 16, backbone_name: Optional[str] = None, pretrained: bool = False
    ) -> None:
        """``backbone_name``: another timm EfficientNet (tests use timm's tiny ``test_efficientnet``);
        ``pretrained``: its ImageNet weights, fetched by timm (a new model; a checkpoint has its own)."""
        super().__init__()
        from kifaru.runtime.memory import skip_triton_without_gpu

        skip_triton_without_gpu()
        import timm

        efficientnet = timm.create_model(backbone_name or BACKBONE_NAME, pretrained=pretrained)
        efficientnet.reset_classifier(0)  # pooled features out (zamba: classifier = Identity)
        self.num_frames = num_frames
        # zamba keeps the backbone's BatchNorm in inference mode, even when training: right for
        # learnt weights. kifaru.train sets it False for a random backbone trained from scratch,
        # whose BatchNorm must learn its statistics (frozen at mean 0, variance 1 it normalises nothing).
        self.frozen_batchnorm = True
        self.backbone = nn.ModuleList(_last_layers(efficientnet))
        self.base = _TimeDistributed(efficientnet)
        self.classifier = nn.Sequential(
            # head_hidden_size: what timm networks with a pre-logits layer (MobileNetV3) output.
            nn.Linear(getattr(efficientnet, "head_hidden_size", None) or efficientnet.num_features, 256),
            nn.Dropout(0.2),
            nn.ReLU(),
            nn.Linear(256, 64),
            nn.Flatten(),
            nn.Linear(64 * num_frames, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.num_frames:
            raise ValueError(f"this model takes {self.num_frames} frames per video, not {x.shape[1]}")
        if self.frozen_batchnorm:
            self.base.eval()
        return self.classifier(self.base(x))


def _last_layers(network: nn.Module) -> list[nn.Module]:
    """The layers fine-tuning unfreezes: zamba's [blocks[-1], conv_head, bn2, global_pool] for an
    EfficientNet; for another timm network, the last stage of its last sequence of stages and
    every layer after it (ResNet: layer4's last block, global_pool, fc)."""
    if all(hasattr(network, name) for name in ("blocks", "conv_head", "bn2", "global_pool")):
        return [network.blocks[-1], network.conv_head, network.bn2, network.global_pool]
    children = list(network.children())
    stages = [i for i, child in enumerate(children) if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1]
    if not stages:
        return children[-1:]
    last = stages[-1]
    return [children[last][-1], *children[last + 1 :]]


def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., T, H, W, 3) -> the model's float input (..., T, 3, H, W)."""
    x = frames.movedim(-1, -3).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std
