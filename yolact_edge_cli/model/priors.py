"""The priors (anchor boxes) the prediction heads predict against, in numpy: the host's Detect
needs them without torch (docs/model.md §3)."""
from __future__ import annotations

import math
from functools import cache

import numpy as np

from .config import FPN_SIZES, ModelConfig


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
