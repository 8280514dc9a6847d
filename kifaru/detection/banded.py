"""YOLOX on letterboxed frames, computing only the rows of the early layers that the picture reaches.

A 16:9 frame fitted into the detector's 640x640 input fills its top 360 rows; the rest is black
padding. The early, high-resolution layers (stride 2 to 16, about a third of the network's work)
only see a few rows around each output row, so below the picture their outputs are those of an
all-black image, the same for every frame. :class:`BandedYOLOX` records those all-black maps once,
then computes each early layer only down to the last row the picture can influence (one row more
per 3x3 convolution) and borrows the rows below from the recording. From stride 32 on (the spatial
pyramid pooling sees the whole image) the full maps are computed as usual.

This is exact, not an approximation: every computed value sees the same inputs as in the full
network, so the outputs agree with it to float rounding (checked for each band before use).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from kifaru.detection.yolox import YOLOX, BaseConv, Bottleneck, CSPLayer, space_to_depth

class BandedYOLOX(nn.Module):
    """``model`` for inputs whose rows from ``rows`` on are black: takes (N, 3, rows, W) and
    returns what ``model`` returns for the same images padded with black to ``input_height``."""

    def __init__(self, model: YOLOX, rows: int, input_height: int = 640, input_width: int = 640) -> None:
        super().__init__()
        if rows % 2 or not 0 < rows <= input_height:
            raise ValueError(f"rows must be even and within 1..{input_height}, not {rows}")
        self.model = model
        self.rows = rows
        self._names = {module: name for name, module in model.named_modules()}
        # The all-black image's maps, by call site; recorded by running the banded code itself
        # on the full black image (where it computes every row, like the plain network).
        self._black: Optional[dict[str, torch.Tensor]] = {}
        dtype = next(model.parameters()).dtype  # (float64 too: the tests compare without float32 rounding)
        with torch.no_grad():
            self._front(torch.zeros(1, 3, input_height, input_width, dtype=dtype))
        self._heights = {key: value.shape[2] for key, value in self._black.items()}
        # Only the rows below a band are ever borrowed; keep those, as buffers (ONNX constants).
        recorded, self._black = self._black, None
        self._borrowed: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            self._front(torch.zeros(1, 3, rows, input_width, dtype=dtype), recorded)
        for key, value in self._borrowed.items():
            self.register_buffer("black_" + key.replace(".", "_"), value, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != self.rows:
            raise ValueError(f"this banded network takes {self.rows} input rows, not {x.shape[2]}")
        dark3, dark4 = self._front(x)
        backbone = self.model.backbone
        return self.model.head(backbone.neck(dark3, dark4, backbone.backbone.dark5(dark4)))

    # -- the early layers, band by band ---------------------------------------------------------

    def _front(self, x: torch.Tensor, recorded: Optional[dict[str, torch.Tensor]] = None):
        """stem..dark4 on rows [0, band) of the input; dark3 and dark4 come back at full height."""
        self._recorded = recorded
        darknet = self.model.backbone.backbone
        x = self._conv(darknet.stem.conv, space_to_depth(x))  # the stem (Focus), band by band
        x = self._csp(darknet.dark2[1], self._conv(darknet.dark2[0], x))
        dark3 = self._csp(darknet.dark3[1], self._conv(darknet.dark3[0], x))
        dark4 = self._csp(darknet.dark4[1], self._conv(darknet.dark4[0], dark3))
        full = lambda t, site: self._extend(t, self._height(site, t), site)  # noqa: E731
        return full(dark3, self._names[darknet.dark3] + ".out"), full(dark4, self._names[darknet.dark4] + ".out")

    def _height(self, site: str, x: torch.Tensor) -> int:
        """The full height of the map at ``site`` (x itself is full while recording)."""
        return x.shape[2] if self._black is not None else self._heights[site]

    def _extend(self, x: torch.Tensor, rows: int, site: str) -> torch.Tensor:
        """x (rows [0, n) of the map at ``site``) grown to ``rows`` rows with the all-black rows."""
        if self._black is not None:  # recording: x is the full map
            self._black[site] = x
            return x
        have = x.shape[2]
        if rows <= have:
            return x[:, :, :rows]
        if self._recorded is not None:  # the dry run that finds which rows are borrowed
            black = self._borrowed[site] = self._recorded[site][:, :, have:rows]
        else:
            black = getattr(self, "black_" + site.replace(".", "_"))
        return torch.cat([x, black.expand(x.shape[0], -1, -1, -1)], dim=2)

    def _conv(self, layer: BaseConv, x: torch.Tensor) -> torch.Tensor:
        """The rows of ``layer``'s output that the band reaches: one more per row of kernel overhang."""
        conv = layer.conv
        kernel, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        if kernel == 1:
            return layer(x)
        site = self._names[layer] + ".in"
        height = self._height(site, x)
        out_height = (height + 2 * pad - kernel) // stride + 1
        out_rows = min(math.ceil((x.shape[2] + pad) / stride), out_height)
        need = min((out_rows - 1) * stride + kernel - pad, height)
        x = self._extend(x, need, site)
        # Zero rows where the real map has its zero padding: above row 0 and, if reached, below the last.
        bottom = (out_rows - 1) * stride + kernel - pad - need
        x = F.pad(x, (0, 0, pad, bottom))
        return layer.act(layer.bn(F.conv2d(x, conv.weight, conv.bias, stride, (0, pad))))

    def _bottleneck(self, block: Bottleneck, x: torch.Tensor) -> torch.Tensor:
        y = self._conv(block.conv2, self._conv(block.conv1, x))
        return y + self._extend(x, y.shape[2], self._names[block] + ".in") if block.use_add else y

    def _csp(self, layer: CSPLayer, x: torch.Tensor) -> torch.Tensor:
        inner = self._conv(layer.conv1, x)
        for block in layer.m:
            inner = self._bottleneck(block, inner)
        side = self._extend(self._conv(layer.conv2, x), inner.shape[2], self._names[layer.conv2] + ".out")
        return self._conv(layer.conv3, torch.cat((inner, side), dim=1))
