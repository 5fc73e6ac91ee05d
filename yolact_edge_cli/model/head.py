"""The prediction head shared by all five FPN levels (its priors: model/priors.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .priors import make_priors


class PredictionHead(nn.Module):
    """One 3×3 conv + ReLU, then box (4), class (81) and mask-coefficient (32) convs per anchor."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, a = cfg.fpn_channels, cfg.num_anchors
        self.num_classes, self.mask_dim = cfg.num_classes, cfg.mask_dim
        self.upfeature = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(c, a * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(c, a * cfg.num_classes, 3, padding=1)
        self.mask_layer = nn.Conv2d(c, a * cfg.mask_dim, 3, padding=1)

    @staticmethod
    def _flatten(x: torch.Tensor, k: int) -> torch.Tensor:
        # NCHW → [B, H·W·anchors, k]; index order ((y·W + x)·anchors + a).
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.upfeature(x)
        loc = self._flatten(self.bbox_layer(x), 4)
        conf = self._flatten(self.conf_layer(x), self.num_classes)
        coef = self._flatten(self.mask_layer(x), self.mask_dim)
        return loc, conf, coef


def run_heads(head: PredictionHead, fpn_maps: list[torch.Tensor]):
    """loc [B,P,4], conf [B,P,81] (softmax), mask coefficients [B,P,32] (tanh) over all levels."""
    outs = [head(p) for p in fpn_maps]
    loc = torch.cat([o[0] for o in outs], dim=-2)
    conf = torch.cat([o[1] for o in outs], dim=-2)
    coef = torch.cat([o[2] for o in outs], dim=-2)
    return loc, F.softmax(conf, dim=-1), torch.tanh(coef)


def priors_tensor(cfg: ModelConfig) -> torch.Tensor:
    return torch.tensor(make_priors(cfg))
