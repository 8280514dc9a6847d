"""YOLOX (inference only), with the parameter names of Megvii's YOLOX so its state dicts load as is.

A compact re-implementation of the network from "YOLOX: Exceeding YOLO Series in 2021" (Megvii,
Apache-2.0; the layout follows github.com/Megvii-BaseDetection/YOLOX). Only what inference needs is
here: no losses, no training-time label assignment. ``YOLOX(depth=0.33, width=0.375)`` is
YOLOX-tiny, the architecture of MegadetectorLite.

``forward`` returns raw per-anchor predictions ``(batch, anchors, 5 + classes)``: box centre and
size in input pixels, objectness and class probabilities (both after the sigmoid), the same as
YOLOX's ``decode_in_inference`` output.
"""

from __future__ import annotations

import torch
from torch import nn

# YOLOX's training recipe sets these on every BatchNorm; they matter for the running-stat epsilon.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


class BaseConv(nn.Module):
    """Conv2d -> BatchNorm -> SiLU."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, ksize, stride, padding=(ksize - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = BaseConv(channels, channels, 1, 1)
        self.conv2 = BaseConv(channels, channels, 3, 1)
        self.use_add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """CSP bottleneck with three convolutions (YOLOv5's C3)."""

    def __init__(self, in_channels: int, out_channels: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, shortcut) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (max pools of 5, 9 and 13)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """Each 2x2 pixel block becomes four channels (Focus's first step). The order matters for the
    pretrained weights: top-left, bottom-left, top-right, bottom-right."""
    return torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1)


class Focus(nn.Module):
    """Space-to-depth: each 2x2 pixel block becomes four channels, then a convolution."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(space_to_depth(x))


class CSPDarknet(nn.Module):
    def __init__(self, depth: float, width: float) -> None:
        super().__init__()
        channels = int(width * 64)
        blocks = max(round(depth * 3), 1)

        def stage(c_in: int, c_out: int, n: int) -> nn.Sequential:
            return nn.Sequential(BaseConv(c_in, c_out, 3, 2), CSPLayer(c_out, c_out, n))

        self.stem = Focus(3, channels, ksize=3)
        self.dark2 = stage(channels, channels * 2, blocks)
        self.dark3 = stage(channels * 2, channels * 4, blocks * 3)
        self.dark4 = stage(channels * 4, channels * 8, blocks * 3)
        self.dark5 = nn.Sequential(
            BaseConv(channels * 8, channels * 16, 3, 2),
            SPPBottleneck(channels * 16, channels * 16),
            CSPLayer(channels * 16, channels * 16, blocks, shortcut=False),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dark3 = self.dark3(self.dark2(self.stem(x)))
        dark4 = self.dark4(dark3)
        return dark3, dark4, self.dark5(dark4)


class YOLOPAFPN(nn.Module):
    """The CSPDarknet backbone and a path-aggregation neck over strides 8, 16 and 32."""

    def __init__(self, depth: float, width: float) -> None:
        super().__init__()
        c3, c4, c5 = (int(c * width) for c in (256, 512, 1024))
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, shortcut=False)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, shortcut=False)
        self.bu_conv2 = BaseConv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, shortcut=False)
        self.bu_conv1 = BaseConv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, shortcut=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.neck(*self.backbone(x))

    def neck(self, x2: torch.Tensor, x1: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The path aggregation over the backbone's stride 8, 16 and 32 outputs."""
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class YOLOXHead(nn.Module):
    """Decoupled head: per level a stem, then a classification branch and a box+objectness branch."""

    strides = (8, 16, 32)

    def __init__(self, num_classes: int, width: float) -> None:
        super().__init__()
        hidden = int(256 * width)
        in_channels = [int(c * width) for c in (256, 512, 1024)]

        def branch() -> nn.Sequential:
            return nn.Sequential(BaseConv(hidden, hidden, 3, 1), BaseConv(hidden, hidden, 3, 1))

        self.stems = nn.ModuleList(BaseConv(c, hidden, 1, 1) for c in in_channels)
        self.cls_convs = nn.ModuleList(branch() for _ in in_channels)
        self.reg_convs = nn.ModuleList(branch() for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)

    def forward(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        levels = []
        for k, x in enumerate(features):
            x = self.stems[k](x)
            reg_feat = self.reg_convs[k](x)
            output = torch.cat(
                [self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat).sigmoid(), self.cls_preds[k](self.cls_convs[k](x)).sigmoid()],
                dim=1,
            )
            levels.append(self._decode(output, self.strides[k]))
        return torch.cat(levels, dim=1)

    @staticmethod
    def _decode(output: torch.Tensor, stride: int) -> torch.Tensor:
        """(batch, 5+C, h, w) grid outputs -> (batch, h*w, 5+C) with boxes in input pixels."""
        batch, channels, height, width = output.shape
        output = output.flatten(start_dim=2).permute(0, 2, 1)
        ys, xs = torch.meshgrid(
            torch.arange(height, device=output.device), torch.arange(width, device=output.device), indexing="ij"
        )
        grid = torch.stack((xs, ys), dim=2).reshape(1, -1, 2).to(output.dtype)
        centre = (output[..., :2] + grid) * stride
        size = torch.exp(output[..., 2:4]) * stride
        return torch.cat([centre, size, output[..., 4:]], dim=-1)


class YOLOX(nn.Module):
    """YOLOX with the CSPDarknet-PAFPN backbone. Input: float (batch, 3, H, W), H and W multiples of 32."""

    def __init__(self, num_classes: int = 1, depth: float = 0.33, width: float = 0.375) -> None:
        super().__init__()
        self.backbone = YOLOPAFPN(depth, width)
        self.head = YOLOXHead(num_classes, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
