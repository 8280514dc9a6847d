"""SlowFast: zamba's two-pathway video classifier, in plain torch with zamba's parameter names.

zamba's ``slowfast`` model (spec section 4) is pytorchvideo's Kinetics ``slowfast_r50`` with its
classification head swapped for one of its own. pytorchvideo is unmaintained, so this module
rebuilds the same network from torch layers: a slow pathway (8 frames, 64..2048 channels) and a
fast one (all 32 frames, 8..256 channels) that feeds the slow one after every stage.

The module layout reproduces zamba's state dict exactly, so its checkpoints load unchanged:
``base.blocks.0..5`` is the network without pytorchvideo's head (stem, four ResNet-50 stages, the
pooling of both pathways), ``backbone.0`` is ``base.blocks.4`` again (zamba lists the last stage to
unfreeze it when fine-tuning: the state dict holds those tensors twice) and ``head.proj`` is the
classifier.

The output is multi-label: one logit per species, a sigmoid each, as ``zamba predict``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

NUM_FRAMES = 32  # the fast pathway's frames; shorter clips are padded (see frames_to_input)
ALPHA = 4  # the slow pathway takes one frame in ALPHA
# The network shrinks each side 32 times (rounding up), then averages 7x7 windows: smaller frames
# leave nothing to average.
MIN_SIDE = 32 * 6 + 1
# Inputs: THWC uint8 frames -> CTHW floats in 0..1, normalised with Kinetics' statistics.
MEAN = 0.45
STD = 0.225

_STAGE_DEPTHS = (3, 4, 6, 3)  # ResNet-50
_BETA = 8  # the fast pathway has 1/_BETA of the slow one's channels
_FUSION_RATIO = 2  # fast -> slow fusion outputs twice its input channels
FEATURES = 2048 + 2048 // _BETA  # what the head receives: 2304


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


class _Stem(nn.Module):
    def __init__(self, out_channels: int, temporal_kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            3, out_channels, (temporal_kernel, 7, 7), stride=(1, 2, 2), padding=(temporal_kernel // 2, 3, 3), bias=False
        )
        self.norm = _bn(out_channels)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class _Bottleneck(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, spatial_stride: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0), bias=False)
        self.norm_a = _bn(dim_inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(
            dim_inner, dim_inner, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1), bias=False
        )
        self.norm_b = _bn(dim_inner)
        self.act_b = nn.ReLU()
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.norm_c = _bn(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class _ResBlock(nn.Module):
    """Bottleneck plus shortcut; the shortcut is projected where the block changes the shape."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, spatial_stride: int) -> None:
        super().__init__()
        if dim_in != dim_out or spatial_stride != 1:
            self.branch1_conv = nn.Conv3d(dim_in, dim_out, 1, stride=(1, spatial_stride, spatial_stride), bias=False)
            self.branch1_norm = _bn(dim_out)
        else:
            self.branch1_conv = self.branch1_norm = None
        self.branch2 = _Bottleneck(dim_in, dim_inner, dim_out, temporal_kernel, spatial_stride)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class _ResStage(nn.Module):
    def __init__(
        self, depth: int, dim_in: int, dim_inner: int, dim_out: int, temporal_kernel: int, spatial_stride: int
    ) -> None:
        super().__init__()
        self.res_blocks = nn.ModuleList(
            _ResBlock(dim_in if i == 0 else dim_out, dim_inner, dim_out, temporal_kernel, spatial_stride if i == 0 else 1)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class _FuseFastToSlow(nn.Module):
    """Fast features, strided in time down to the slow pathway's frames, appended to its channels."""

    def __init__(self, fast_channels: int) -> None:
        super().__init__()
        out = fast_channels * _FUSION_RATIO
        self.conv_fast_to_slow = nn.Conv3d(fast_channels, out, (7, 1, 1), stride=(ALPHA, 1, 1), padding=(3, 0, 0), bias=False)
        self.norm = _bn(out)
        self.activation = nn.ReLU()

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = x
        fuse = self.activation(self.norm(self.conv_fast_to_slow(fast)))
        return [torch.cat([slow, fuse], 1), fast]


class _MultiPathway(nn.Module):
    """One block per pathway, then the fusion (identity after the last stage)."""

    def __init__(self, blocks: Sequence[nn.Module], fusion: nn.Module) -> None:
        super().__init__()
        self.multipathway_blocks = nn.ModuleList(blocks)
        self.multipathway_fusion = fusion

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.multipathway_fusion([block(p) for block, p in zip(self.multipathway_blocks, x)])


class _PoolConcat(nn.Module):
    """Kinetics' fixed-window averages (8x7x7 slow, 32x7x7 fast, stride 1), channels concatenated.
    On frames larger than 224x224 this leaves several windows; the head averages its outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.ModuleList(
            [nn.AvgPool3d((NUM_FRAMES // ALPHA, 7, 7), stride=1), nn.AvgPool3d((NUM_FRAMES, 7, 7), stride=1)]
        )

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([pool(p) for pool, p in zip(self.pool, x)], 1)


class _Base(nn.Module):
    """pytorchvideo's ``slowfast_r50`` without its head, under its names (``blocks.0..5``)."""

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_MultiPathway([_Stem(64, 1), _Stem(64 // _BETA, 5)], _FuseFastToSlow(64 // _BETA))]
        dim_in, dim_out = 64, 256
        slow_temporal_kernels = (1, 1, 3, 3)  # the slow pathway has no temporal convolution early on
        for stage, depth in enumerate(_STAGE_DEPTHS):
            stride = 1 if stage == 0 else 2
            slow_in = dim_in + dim_in * _FUSION_RATIO // _BETA  # its own channels plus the fused ones
            slow = _ResStage(depth, slow_in, dim_out // 4, dim_out, slow_temporal_kernels[stage], stride)
            fast = _ResStage(depth, dim_in // _BETA, dim_out // 4 // _BETA, dim_out // _BETA, 3, stride)
            last = stage == len(_STAGE_DEPTHS) - 1
            blocks.append(_MultiPathway([slow, fast], nn.Identity() if last else _FuseFastToSlow(dim_out // _BETA)))
            dim_in, dim_out = dim_out, dim_out * 2
        blocks.append(_PoolConcat())
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _multilayer_perceptron(
    in_features: int, hidden: Optional[Sequence[int]], out_features: int, dropout: Optional[float]
) -> nn.Module:
    """zamba's ``build_multilayer_perceptron`` (same layer indices: Linear, ReLU[, Dropout], ...)."""
    if not hidden:
        return nn.Linear(in_features, out_features)
    layers: list[nn.Module] = []
    for size_in, size_out in zip([in_features, *hidden[:-1]], hidden):
        layers += [nn.Linear(size_in, size_out), nn.ReLU()]
        if dropout is not None and dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden[-1], out_features))
    return nn.Sequential(*layers)


class _Head(nn.Module):
    """pytorchvideo's ``ResNetBasicHead`` as zamba configures it: dropout, the projection applied
    at every pooled window, then the average over the windows."""

    def __init__(self, proj: nn.Module, dropout: Optional[float]) -> None:
        super().__init__()
        self.dropout = None if dropout is None else nn.Dropout(dropout)
        self.proj = proj
        self.output_pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.proj(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return self.output_pool(x).flatten(1)


class SlowFast(nn.Module):
    """``forward``: [slow (B, 3, 8, H, W), fast (B, 3, 32, H, W)] normalised floats, as
    :func:`frames_to_input` makes them -> (B, species) logits. H and W at least 193."""

    def __init__(
        self,
        num_classes: int,
        backbone_mode: str = "train",
        post_backbone_dropout: Optional[float] = None,
        head_dropout_rate: Optional[float] = None,
        head_hidden_layer_sizes: Optional[Sequence[int]] = None,
        output_with_global_average: bool = True,
    ) -> None:
        super().__init__()
        if backbone_mode not in ("train", "eval"):
            raise ValueError(f"backbone_mode must be 'train' or 'eval', not {backbone_mode!r}")
        # zamba records output_with_global_average but its head averages the windows either way.
        del output_with_global_average
        self.backbone_mode = backbone_mode
        base = _Base()
        # Registered first, as in zamba, so the state dict lists the tensors in zamba's order.
        self.backbone = base.blocks[-2:]
        self.base = base
        hidden = [int(size) for size in head_hidden_layer_sizes or ()]
        self.head = _Head(_multilayer_perceptron(FEATURES, hidden, num_classes, head_dropout_rate), post_backbone_dropout)

    def forward(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        slow, fast = x
        if fast.shape[2] != NUM_FRAMES or slow.shape[2] != NUM_FRAMES // ALPHA:
            raise ValueError(
                f"this model takes {NUM_FRAMES} frames per video (fewer are padded), not {fast.shape[2]}; "
                "set the loader's total_frames to 32"
            )
        if min(fast.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"this model takes frames of at least {MIN_SIDE}x{MIN_SIDE} pixels, not {tuple(fast.shape[-2:])}")
        if self.backbone_mode == "eval":
            self.base.eval()  # a frozen feature extractor: BatchNorm stays in inference mode, as zamba's
        return self.head(self.base([slow, fast]))


def frames_to_input(frames: torch.Tensor) -> list[torch.Tensor]:
    """uint8 frames (..., T, H, W, 3) -> [slow (..., 3, T'/4, H, W), fast (..., 3, T', H, W)].

    zamba's ``slowfast_transforms``: fewer than 32 frames are padded to 32 with zeros after
    normalisation (the mean colour), the larger half of the padding before the clip; more are
    kept (the network then refuses them, as zamba's fails on them). The slow pathway takes
    ``T'//4`` frames evenly spaced from the first to the last, rounded down.
    """
    x = (frames.movedim(-1, -4).float() / 255.0 - MEAN) / STD
    missing = NUM_FRAMES - x.shape[-3]
    if missing > 0:
        x = nn.functional.pad(x, (0, 0, 0, 0, missing - missing // 2, missing // 2))
    count = x.shape[-3]
    slow = torch.index_select(x, -3, torch.linspace(0, count - 1, count // ALPHA, device=x.device).long())
    return [slow, x]
