"""The deterministic random checkpoint (docs/random-checkpoint.md): every key drawn from its own
generator, so any implementation can rebuild the same weights from the key list alone. It lets
the workflow and parity be tested without the released weights."""
from __future__ import annotations

import re
import zlib
from collections import OrderedDict

import numpy as np
import torch

from .checkpoint import expected_shapes
from .config import RANDOM_BG_BIAS, RANDOM_CONF_GAIN, RANDOM_MASK_BIAS, ModelConfig

# The video configs' extra gains (docs/random-checkpoint.md §3): small enough that the warped
# features stay features (scale ≈ 1, shift ≈ 0) and SPA's residual stays a correction.
VIDEO_WEIGHT_GAINS = (
    (re.compile(r"flow_net\.pred\d\.(scale|bias)\.weight$"), 0.1),
    (re.compile(r"spa\.refine_convs\.\d+\.0\.weight$"), 0.1),
)
# The reference initialises the flow scale's bias to 1 (a feature scale of one).
SCALE_BIAS = re.compile(r"flow_net\.pred\d\.scale\.bias$")


def _weight_gain(key: str, conf_gain: float) -> float:
    if key.endswith("conf_layer.weight"):
        return conf_gain
    return next((gain for pattern, gain in VIDEO_WEIGHT_GAINS if pattern.search(key)), 1.0)


def _batch_norm_value(leaf: str, n: np.ndarray) -> np.ndarray:
    if leaf == "weight":
        return 0.5 + 0.1 * n
    if leaf == "running_var":
        return 1 + np.abs(n)
    return 0.1 * n  # bias and running_mean


def random_state_dict(cfg: ModelConfig, seed: int = 0, conf_gain: float = RANDOM_CONF_GAIN,
                      mask_bias: float = RANDOM_MASK_BIAS, bg_bias: float = RANDOM_BG_BIAS,
                      ) -> OrderedDict[str, torch.Tensor]:
    """Every key drawn from its own generator seeded by seed + crc32(key), so any implementation
    can rebuild the same weights from the key list alone."""
    shapes = expected_shapes(cfg.name)
    bn_prefixes = {k[: -len(".running_mean")] for k in shapes if k.endswith(".running_mean")}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in shapes.items():
        prefix, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.int64)
            continue
        n = np.random.default_rng(seed + zlib.crc32(key.encode("utf-8"))).standard_normal(size=shape)
        if prefix in bn_prefixes:
            value = _batch_norm_value(leaf, n)
        elif len(shape) == 4:
            _, fan_in_channels, kh, kw = shape
            value = n * np.sqrt(2.0 / (fan_in_channels * kh * kw)) * _weight_gain(key, conf_gain)
        else:
            value = 0.01 * n
            if key.endswith("mask_layer.bias"):
                value = value + mask_bias
            if SCALE_BIAS.search(key):
                value = value + 1.0
            if key.endswith("conf_layer.bias"):
                value = value + bg_bias * (np.arange(shape[0]) % cfg.num_classes == 0)
        out[key] = torch.from_numpy(np.asarray(value, dtype=np.float64).astype(np.float32))
    return out
