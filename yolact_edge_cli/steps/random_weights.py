"""`yedge random-weights`: the deterministic random checkpoint, for demos and tests."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..model.config import DEFAULT_CONFIG, RANDOM_BG_BIAS, RANDOM_CONF_GAIN, RANDOM_MASK_BIAS
from ..model.random_checkpoint import random_state_dict
from ..workspace import atomic_path, sha256_file


def run(output: Path, *, config: str = DEFAULT_CONFIG, seed: int = 0,
        conf_gain: float = RANDOM_CONF_GAIN, mask_bias: float = RANDOM_MASK_BIAS,
        bg_bias: float = RANDOM_BG_BIAS) -> dict:
    import torch

    from ..model.config import get_config

    cfg = get_config(config)
    with np.errstate(over="ignore", invalid="ignore"):  # judged below, as float32 values
        state = random_state_dict(cfg, seed, conf_gain, mask_bias, bg_bias)
    overflowed = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if overflowed:
        raise UsageError(f"--conf-gain {conf_gain:g}, --mask-bias {mask_bias:g}, --bg-bias {bg_bias:g}: "
                         f"{overflowed[0]} would not be finite in float32", hint="pass smaller constants")
    # torch.save names the archive's records after the file it writes to (here a random temp
    # name); saving to memory gives the fixed prefix "archive", so the bytes depend on the
    # weights alone.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(output) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return {"path": str(output), "config": cfg.name, "seed": seed, "conf_gain": conf_gain,
            "mask_bias": mask_bias, "bg_bias": bg_bias, "keys": len(state),
            "sha256": sha256_file(output)}
