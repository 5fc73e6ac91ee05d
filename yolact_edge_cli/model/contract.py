"""What an exported model takes and gives, from the config alone (no torch): the layouts'
output names, per-sample shapes and byte sizes (docs/model.md, the export layouts). Everything
that only reads or writes model files (prep, infer on onnxruntime or Ascend, eval of the head
layout, the CLI's help) uses this module, so it starts without importing torch."""
from __future__ import annotations

import math

from ..choices import Layout
from ..errors import InputError
from .config import FPN_SIZES, PROTO_SIZE, RESNET50, ModelConfig

LAYOUTS = Layout.values()
FPN_OUTPUT_NAMES = ("output0", "output1", "output2", "output3", "output4", "output5")
HEAD_OUTPUT_NAMES = ("loc", "conf", "mask", "proto")


def output_names(layout: str) -> tuple[str, ...]:
    return FPN_OUTPUT_NAMES if layout == "fpn" else HEAD_OUTPUT_NAMES


def output_shapes(layout: str, cfg: ModelConfig = RESNET50) -> dict[str, tuple[int, ...]]:
    """Per-sample shape (batch dimension left out) of every output of a layout; the released
    configs all share these sizes."""
    proto = (PROTO_SIZE, PROTO_SIZE, cfg.mask_dim)
    if layout == "fpn":
        maps = [(cfg.fpn_channels, s, s) for s in FPN_SIZES]
        return dict(zip(FPN_OUTPUT_NAMES, [*maps, proto]))
    p = cfg.num_priors
    return dict(zip(HEAD_OUTPUT_NAMES, [(p, 4), (p, cfg.num_classes), (p, cfg.mask_dim), proto]))


def output_bytes(layout: str, itemsize: int = 4) -> list[int]:
    """Bytes of one sample's output files (ais_bench's per-sample split), by output index."""
    return [math.prod(shape) * itemsize for shape in output_shapes(layout).values()]


def layout_of(names: list[str]) -> str:
    """Which layout a model with these output names has."""
    for layout in LAYOUTS:
        if list(names) == list(output_names(layout)):
            return layout
    raise InputError(f"model outputs {names} are neither the fpn nor the head layout",
                     hint="export the model with `yedge export`")
