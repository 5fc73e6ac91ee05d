"""FPN in YolactEdge's two phases: lateral 1×1 convs with top-down upsampling, then 3×3
prediction convs (ReLU) and two stride-2 downsampling convs (no ReLU) for P6 and P7.

Both layer lists are stored in reverse (index 0 works on C5/P5), as in the reference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FPNPhase1(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], channels: int):
        super().__init__()
        self.lat_layers = nn.ModuleList([nn.Conv2d(c, channels, 1) for c in reversed(in_channels)])

    def forward(self, convouts: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.with_lateral(convouts)[0]

    def with_lateral(self, convouts: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The merged maps and C3's own lateral (before the top-down sum), which the video
        configs keep from each keyframe."""
        # The reference starts from zeros(1) + lat(C5); adding 0.0 changes nothing.
        out: list[torch.Tensor] = [convouts[-1]] * len(convouts)
        x = lateral = self.lat_layers[0](convouts[-1])
        out[-1] = x
        for lat, j in zip(self.lat_layers[1:], range(len(convouts) - 2, -1, -1)):
            h, w = convouts[j].shape[-2:]
            x = F.interpolate(x, size=(int(h), int(w)), mode="bilinear", align_corners=False)
            lateral = lat(convouts[j])
            x = x + lateral
            out[j] = x
        return out, lateral

    def c3_lateral(self, c3: torch.Tensor) -> torch.Tensor:
        return self.lat_layers[-1](c3)


class FPNPhase2(nn.Module):
    def __init__(self, channels: int, num_levels: int, num_downsample: int):
        super().__init__()
        self.pred_layers = nn.ModuleList(
            [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(num_levels)]
        )
        self.downsample_layers = nn.ModuleList(
            [nn.Conv2d(channels, channels, 3, padding=1, stride=2) for _ in range(num_downsample)]
        )

    def forward(self, out: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(out)
        maps = [F.relu(self.pred_layers[n - 1 - j](out[j])) for j in range(n)]
        for downsample in self.downsample_layers:
            maps.append(downsample(maps[-1]))
        return maps
