"""The YolactEdge network, split where the deployment splits it.

`Yolact.features` is what runs on the accelerator in the `fpn` layout (P3–P7 + prototypes);
`Yolact.heads` is the host part the Ascend recipe runs afterwards. `export_module` wraps either
layout as the module that `torch.onnx.export` traces.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..choices import Layout
from .backbone import build_backbone
from .config import FPN_SIZES, MEANS_BGR, PROTO_SIZE, RESNET50, STD_BGR, ModelConfig
from .fpn import FPNPhase1, FPNPhase2
from .head import PredictionHead, run_heads
from .protonet import build_protonet, prototypes

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


class Yolact(nn.Module):
    """Modules are registered in the reference's order so `state_dict()` keys line up."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        channels = cfg.fpn_channels
        self.backbone = build_backbone(cfg.backbone)
        self.proto_net = build_protonet(channels, cfg.mask_dim)
        self.fpn_phase_1 = FPNPhase1(cfg.backbone.out_channels, channels)
        self.fpn_phase_2 = FPNPhase2(channels, len(cfg.backbone.out_channels), cfg.num_downsample)
        self.prediction_layers = nn.ModuleList([PredictionHead(cfg)])
        # Trained with a semantic-segmentation loss; unused at inference but part of the checkpoint.
        self.semantic_seg_conv = nn.Conv2d(channels, cfg.num_classes - 1, 1)

    @property
    def head(self) -> PredictionHead:
        return self.prediction_layers[0]

    def features(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """image [B,3,550,550] normalised RGB → ([P3..P7], proto [B,138,138,32])."""
        maps = self.fpn_phase_2(self.fpn_phase_1(self.backbone(image)))
        return maps, prototypes(self.proto_net, maps[0])

    def heads(self, maps: list[torch.Tensor]):
        """[P3..P7] → loc [B,P,4], conf [B,P,81] (softmax), mask coefficients [B,P,32] (tanh)."""
        return run_heads(self.head, maps)

    def forward(self, image: torch.Tensor):
        maps, proto = self.features(image)
        loc, conf, coef = self.heads(maps)
        return loc, conf, coef, proto


class FpnLayout(nn.Module):
    """Six outputs: P3..P7 and proto (the Ascend recipe's contract)."""

    def __init__(self, net: Yolact):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor):
        maps, proto = self.net.features(image)
        return (*maps, proto)


class HeadLayout(nn.Module):
    """loc, conf (softmax), mask (tanh), proto: the heads run on the device too."""

    def __init__(self, net: Yolact):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor):
        return self.net(image)


class Uint8Input(nn.Module):
    """Takes uint8 RGB pixels and normalises them in the graph (prep --dtype uint8)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(MEANS_BGR[::-1]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD_BGR[::-1]).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor):
        return self.inner((image.to(self.mean.dtype) - self.mean) / self.std)


def export_module(net: Yolact, layout: str, input_dtype: str = "float32") -> nn.Module:
    module = FpnLayout(net) if layout == "fpn" else HeadLayout(net)
    return Uint8Input(module) if input_dtype == "uint8" else module


def layout_of(names: list[str]) -> str:
    """Which layout a model with these output names has."""
    for layout in LAYOUTS:
        if list(names) == list(output_names(layout)):
            return layout
    from ..errors import InputError

    raise InputError(f"model outputs {names} are neither the fpn nor the head layout",
                     hint="export the model with `yedge export`")
