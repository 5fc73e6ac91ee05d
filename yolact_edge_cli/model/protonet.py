"""Proto net: 3×(conv3×3+ReLU), ×2 bilinear upsample+ReLU, conv3×3+ReLU, conv1×1 → 32 prototypes.

Module indices (0, 2, 4, 8, 10 hold weights) match the reference's `proto_net.N` keys.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def build_protonet(channels: int, mask_dim: int) -> nn.Sequential:
    def conv3() -> nn.Conv2d:
        return nn.Conv2d(channels, channels, 3, padding=1)

    return nn.Sequential(
        conv3(), nn.ReLU(inplace=True),
        conv3(), nn.ReLU(inplace=True),
        conv3(), nn.ReLU(inplace=True),
        Upsample2x(), nn.ReLU(inplace=True),
        conv3(), nn.ReLU(inplace=True),
        nn.Conv2d(channels, mask_dim, 1),
    )


def prototypes(protonet: nn.Sequential, p3: torch.Tensor) -> torch.Tensor:
    """Prototype masks [B, 138, 138, 32] (NHWC, ReLU-activated) from P3."""
    return F.relu(protonet(p3)).permute(0, 2, 3, 1).contiguous()
