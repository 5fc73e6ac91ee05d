"""Temporal feature reuse (docs/video.md §2): FlowNetMini estimates, from the C3 laterals of a
frame and of its keyframe, a flow and a per-pixel scale and shift for P4 and P5; the keyframe's
P4 and P5 are warped with them; SPA refines the warped maps with the frame's own lateral.

Module names follow the reference's checkpoint names (`flow_net_pre_convs.*`, `flow_net.*`,
`spa.*`). `pred1`, `upfeat2` and `upflow2` are in every video checkpoint but inference never
reads them (the reference's eval network is FlowNetMiniTRT, which stops at P4): they are built so
that the keys line up and are never run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.1
# The flow is in units of 1/8 of the normalised [-1, 1] grid (the reference's `offset / 8`).
FLOW_UNITS_PER_GRID = 8.0


def conv_lrelu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3×3 conv with bias, then LeakyReLU(0.1): the reference's `conv_lrelu`."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
                         nn.LeakyReLU(LEAKY_SLOPE))


class FlowPreConvs(nn.Module):
    """The C3 lateral (256 ch) reduced to the flow net's 64 channels."""

    def __init__(self, fpn_channels: int, flow_channels: int):
        super().__init__()
        self.convs = nn.Sequential(conv_lrelu(fpn_channels, flow_channels))

    def forward(self, lateral: torch.Tensor) -> torch.Tensor:
        return self.convs(lateral)


class FlowPrediction(nn.Module):
    """A 2-channel flow (3×3, no bias) and a per-pixel feature scale and shift (1×1 convs)."""

    def __init__(self, in_channels: int, fpn_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2, 3, padding=1, bias=False)
        self.scale = nn.Conv2d(in_channels, fpn_channels, 1)
        self.bias = nn.Conv2d(in_channels, fpn_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.conv(x), self.scale(x), self.bias(x)


class FlowNetMini(nn.Module):
    """Three stride-1/2/2 encoder stages on cat(current, key); flows at the 1/2 (P4) and
    1/4 (P5) scales of the 69×69 input, P5's upsampled into P4's prediction."""

    def __init__(self, flow_channels: int, fpn_channels: int):
        super().__init__()
        c = flow_channels
        self.conv1 = nn.Sequential(conv_lrelu(2 * c, c), conv_lrelu(c, c))
        self.conv2 = nn.Sequential(conv_lrelu(c, 2 * c, stride=2), conv_lrelu(2 * c, 2 * c))
        self.conv3 = nn.Sequential(conv_lrelu(2 * c, 4 * c, stride=2), conv_lrelu(4 * c, 4 * c))
        self.pred3 = FlowPrediction(4 * c, fpn_channels)
        self.pred2 = FlowPrediction(4 * c + 2, fpn_channels)
        self.pred1 = FlowPrediction(2 * c + 2, fpn_channels)  # unused at inference
        self.upfeat3 = nn.Conv2d(4 * c, 2 * c, 3, padding=1, bias=False)
        self.upflow3 = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.upfeat2 = nn.Conv2d(4 * c + 2, c, 3, padding=1, bias=False)  # unused at inference
        self.upflow2 = nn.Conv2d(2, 2, 3, padding=1, bias=False)  # unused at inference

    def forward(self, current: torch.Tensor, key: torch.Tensor):
        """→ ((flow, scale, shift) at P4, (flow, scale, shift) at P5)."""
        conv2 = self.conv2(self.conv1(torch.cat((current, key), dim=1)))
        conv3 = self.conv3(conv2)
        p5 = self.pred3(conv3)
        size = conv2.shape[-2:]
        up_features = self.upfeat3(F.interpolate(conv3, size=size, mode="bilinear", align_corners=False))
        up_flow = self.upflow3(F.interpolate(p5[0], size=size, mode="bilinear", align_corners=False))
        p4 = self.pred2(torch.cat((conv2, up_features, up_flow), dim=1))
        return p4, p5


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of `features` at the pixel grid moved by `flow` (zeros outside), with the
    reference's grid: pixel centres normalised by (size − 1), i.e. align_corners=True."""
    # Python ints: an exported graph holds the base grid as a constant (the map sizes are static).
    h, w = int(flow.shape[-2]), int(flow.shape[-1])
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device) * (2.0 / (w - 1)) - 1
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device) * (2.0 / (h - 1)) - 1
    base = torch.stack((xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)), dim=0)
    grid = (base + flow / FLOW_UNITS_PER_GRID).permute(0, 2, 3, 1)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class SPA(nn.Module):
    """Shallow-feature refinement: each warped map gets a residual from cat(map, the frame's C3
    lateral resized to the map). The lateral is resized in a chain, P4's size then P5's, as in
    the reference."""

    def __init__(self, fpn_channels: int, num_maps: int = 2):
        super().__init__()
        self.refine_convs = nn.ModuleList(
            [conv_lrelu(2 * fpn_channels, fpn_channels) for _ in range(num_maps)])

    def forward(self, lateral: torch.Tensor, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for refine, x in zip(self.refine_convs, maps):
            lateral = F.interpolate(lateral, size=x.shape[-2:], mode="bilinear", align_corners=False)
            out.append(x + refine(torch.cat((x, lateral), dim=1)))
        return out
