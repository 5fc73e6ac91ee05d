"""The prediction head shared by all five FPN levels, and the priors it predicts against."""
from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import FPN_SIZES, ModelConfig


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


@cache
def _priors(max_size: int, scales: tuple[int, ...], ratios: tuple[float, ...]) -> np.ndarray:
    rows = []
    for size, scale in zip(FPN_SIZES, scales):
        for j in range(size):
            for i in range(size):
                x, y = (i + 0.5) / size, (j + 0.5) / size
                for ar in ratios:
                    w = scale * math.sqrt(ar) / max_size
                    # The reference computes h = scale / sqrt(ar) / max_size and then overrides it
                    # with h = w (use_square_anchors): every anchor is a square.
                    rows.append([x, y, w, w])
    priors = np.asarray(rows, dtype=np.float64).astype(np.float32)
    priors.setflags(write=False)
    return priors


def make_priors(cfg: ModelConfig) -> np.ndarray:
    """Priors [19248, 4] as (cx, cy, w, h) relative to the input, unclipped, float32 (read-only)."""
    return _priors(cfg.max_size, cfg.pred_scales, cfg.aspect_ratios)


def priors_tensor(cfg: ModelConfig) -> torch.Tensor:
    return torch.tensor(make_priors(cfg))
