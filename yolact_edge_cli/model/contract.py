"""What an exported model takes and gives, from the config alone (no torch): the layouts'
output names, per-sample shapes and byte sizes (docs/model.md, the export layouts). Everything
that only reads or writes model files (prep, infer on onnxruntime or Ascend, eval of the head
layout, the CLI's help) uses this module, so it starts without importing torch."""
from __future__ import annotations

import math
from pathlib import Path

from ..choices import Layout
from ..errors import InputError
from .config import FPN_SIZES, PROTO_SIZE, RESNET50, VID_RESNET50, ModelConfig

LAYOUTS = Layout.values()
FPN_OUTPUT_NAMES = ("output0", "output1", "output2", "output3", "output4", "output5")
HEAD_OUTPUT_NAMES = ("loc", "conf", "mask", "proto")
# Detect on the device (docs/model.md, the detect layout): every output is float, classes and
# count included, so all of a model's outputs share one dtype as ais_bench and atc expect.
DETECT_OUTPUT_NAMES = ("boxes", "scores", "classes", "coefficients", "count", "proto")
_OUTPUT_NAMES = {Layout.FPN.value: FPN_OUTPUT_NAMES, Layout.HEAD.value: HEAD_OUTPUT_NAMES,
                 Layout.DETECT.value: DETECT_OUTPUT_NAMES}


# A video config's keyframe graph also gives, and its non-keyframe graph also takes, the key
# state (docs/video.md §2): the keyframe's pre-3×3 P4 and P5 and its C3 lateral.
KEY_STATE_NAMES = ("key_p4", "key_p5", "key_lateral")


def key_state_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of the key state."""
    p3, p4, p5 = FPN_SIZES[:3]
    return dict(zip(KEY_STATE_NAMES, [(cfg.fpn_channels, s, s) for s in (p4, p5, p3)]))


def non_keyframe_graph(keyframe_graph: str | Path) -> Path:
    """Where a video model's non-keyframe graph lives: beside its keyframe graph
    (models/yolact_edge.onnx → models/yolact_edge.nonkey.onnx; the same for an .om)."""
    path = Path(keyframe_graph)
    return path.with_name(f"{path.stem}.nonkey{path.suffix}")


def output_names(layout: str) -> tuple[str, ...]:
    return _OUTPUT_NAMES[layout]


def output_shapes(layout: str, cfg: ModelConfig = RESNET50) -> dict[str, tuple[int, ...]]:
    """Per-sample shape (batch dimension left out) of every output of a layout; the released
    configs all share these sizes."""
    proto = (PROTO_SIZE, PROTO_SIZE, cfg.mask_dim)
    if layout == Layout.FPN.value:
        shapes: list[tuple[int, ...]] = [(cfg.fpn_channels, s, s) for s in FPN_SIZES]
    elif layout == Layout.HEAD.value:
        p = cfg.num_priors
        shapes = [(p, 4), (p, cfg.num_classes), (p, cfg.mask_dim)]
    else:
        n = cfg.max_num_detections
        shapes = [(n, 4), (n,), (n,), (n, cfg.mask_dim), ()]
    return dict(zip(output_names(layout), [*shapes, proto]))


def layout_of_shapes(shapes: list[tuple[int, ...]]) -> str:
    """Which layout gives outputs of these per-sample shapes (an .om's or a run folder's files,
    where the names are not kept), for an image model (COCO's classes) or a video one."""
    for layout in LAYOUTS:
        for cfg in (RESNET50, VID_RESNET50):  # the two class counts (the head layout's conf)
            if [tuple(s) for s in shapes] == list(output_shapes(layout, cfg).values()):
                return layout
    raise InputError(f"model outputs of shapes {shapes} are none of the layouts {', '.join(LAYOUTS)}",
                     hint="export the model with `yedge export`")


def key_state_count(shapes: list[tuple[int, ...]]) -> int:
    """How many of these per-sample output shapes, at their end, are a video keyframe graph's
    key state (KEY_STATE_NAMES): 3 for a keyframe graph, else 0."""
    key = list(key_state_shapes(VID_RESNET50).values())
    return len(key) if len(shapes) > len(key) and [tuple(s) for s in shapes[-len(key):]] == key else 0


def output_bytes(layout: str, itemsize: int = 4) -> list[int]:
    """Bytes of one sample's output files (ais_bench's per-sample split), by output index."""
    return [math.prod(shape) * itemsize for shape in output_shapes(layout).values()]


def layout_of(names: list[str]) -> str:
    """Which layout a model with these output names has."""
    for layout in LAYOUTS:
        if list(names) == list(output_names(layout)):
            return layout
    raise InputError(f"model outputs {names} are none of the layouts {', '.join(LAYOUTS)}",
                     hint="export the model with `yedge export`")
