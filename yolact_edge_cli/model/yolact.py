"""The YolactEdge network, split where the deployment splits it.

`Yolact.features` is what runs on the accelerator in the `fpn` layout (P3–P7 + prototypes);
`Yolact.heads` is the host part the Ascend recipe runs afterwards. `export_module` wraps any
layout (fpn, head, detect) as the module that `torch.onnx.export` traces.
"""
from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import Layout
from .backbone import ResNetBackbone, build_backbone
from .config import MEANS_BGR, STD_BGR, ModelConfig
from .device_detect import DeviceDetect
from .flow import SPA, FlowNetMini, FlowPreConvs, warp
from .fpn import FPNPhase1, FPNPhase2
from .head import PredictionHead, priors_tensor, run_heads
from .protonet import build_protonet, prototypes


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
        if cfg.video is not None:
            if cfg.video.use_spa:
                self.spa = SPA(channels)
            self.flow_net_pre_convs = FlowPreConvs(channels, cfg.video.flow_channels)
            self.flow_net = FlowNetMini(cfg.video.flow_channels, channels)
        self.prediction_layers = nn.ModuleList([PredictionHead(cfg)])
        # Trained with a semantic-segmentation loss; unused at inference but part of the checkpoint.
        self.semantic_seg_conv = nn.Conv2d(channels, cfg.num_classes - 1, 1)

    @property
    def head(self) -> PredictionHead:
        head = self.prediction_layers[0]
        assert isinstance(head, PredictionHead)
        return head

    def features(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """image [B,3,550,550] normalised RGB → ([P3..P7], proto [B,138,138,32])."""
        maps = self.fpn_phase_2(self.fpn_phase_1(self.backbone(image)))
        return maps, prototypes(self.proto_net, maps[0])

    def keyframe(self, image: torch.Tensor):
        """A video keyframe: the full network, plus what the frames until the next keyframe reuse
        (contract.KEY_STATE_NAMES: its pre-3×3 P4 and P5, and its C3 lateral)."""
        merged, lateral = self.fpn_phase_1.with_lateral(self.backbone(image))
        maps = self.fpn_phase_2(merged)
        return maps, prototypes(self.proto_net, maps[0]), (merged[1], merged[2], lateral)

    def non_keyframe(self, image: torch.Tensor, key_p4: torch.Tensor, key_p5: torch.Tensor,
                     key_lateral: torch.Tensor):
        """A frame between keyframes (docs/video.md §2): the backbone up to C3, then the
        keyframe's P4 and P5 warped by the flow from the keyframe's lateral to this frame's."""
        assert self.cfg.video is not None and isinstance(self.backbone, ResNetBackbone)
        c3 = self.backbone.c3(image)
        lateral = self.fpn_phase_1.c3_lateral(c3)
        p4, p5 = self.warped(lateral, key_p4, key_p5, key_lateral)
        p3 = F.interpolate(p4, size=c3.shape[-2:], mode="bilinear", align_corners=False) + lateral
        if self.cfg.video.use_spa:
            p4, p5 = self.spa(lateral, [p4, p5])
        maps = self.fpn_phase_2([p3, p4, p5])
        return maps, prototypes(self.proto_net, maps[0])

    def warped(self, lateral: torch.Tensor, key_p4: torch.Tensor, key_p5: torch.Tensor,
               key_lateral: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keyframe's P4 and P5 moved to this frame: warp, then × scale + shift."""
        pre = self.flow_net_pre_convs
        moved = []
        for (flow, scale, shift), key in zip(self.flow_net(pre(lateral), pre(key_lateral)), (key_p4, key_p5)):
            moved.append(warp(key, flow) * scale + shift)
        return moved[0], moved[1]

    def heads(self, maps: list[torch.Tensor]):
        """[P3..P7] → loc [B,P,4], conf [B,P,81] (softmax), mask coefficients [B,P,32] (tanh)."""
        return run_heads(self.head, maps)

    def forward(self, image: torch.Tensor):
        maps, proto = self.features(image)
        loc, conf, coef = self.heads(maps)
        return loc, conf, coef, proto


class VideoPass(str, Enum):
    """Which pass of the network a graph runs: an image (image configs), or a video config's
    keyframe (which also gives the key state) or non-keyframe (which also takes it)."""
    IMAGE = "image"
    KEYFRAME = "keyframe"
    NON_KEYFRAME = "non_keyframe"


class _Layout(nn.Module):
    """A layout's outputs of one pass: `forward(image, *key_state)` → (*outputs, *key_state)."""

    def __init__(self, net: Yolact, video_pass: VideoPass):
        super().__init__()
        self.net = net
        self.video_pass = video_pass

    def features(self, image: torch.Tensor, key: tuple[torch.Tensor, ...]):
        if self.video_pass is VideoPass.KEYFRAME:
            return self.net.keyframe(image)
        if self.video_pass is VideoPass.NON_KEYFRAME:
            return (*self.net.non_keyframe(image, *key), ())
        return (*self.net.features(image), ())


class FpnLayout(_Layout):
    """Six outputs: P3..P7 and proto (the Ascend recipe's contract)."""

    def forward(self, image: torch.Tensor, *key: torch.Tensor):
        maps, proto, state = self.features(image, key)
        return (*maps, proto, *state)


class HeadLayout(_Layout):
    """loc, conf (softmax), mask (tanh), proto: the heads run on the device too."""

    def forward(self, image: torch.Tensor, *key: torch.Tensor):
        maps, proto, state = self.features(image, key)
        return (*self.net.heads(maps), proto, *state)


# The names of the detect layout's network tensors while export checks them.
NETWORK_CHECK_OUTPUTS = ("loc", "conf", "mask")


class DetectLayout(_Layout):
    """boxes, scores, classes, coefficients, count, proto: Detect on the device too, the host
    left with the masks. With `network_outputs`, loc, conf and mask follow: export's check
    compares them, then drops them from the graph (model/parity.py)."""

    def __init__(self, net: Yolact, video_pass: VideoPass, network_outputs: bool = False):
        super().__init__(net, video_pass)
        self.detect = DeviceDetect(net.cfg, priors_tensor(net.cfg))
        self.network_outputs = network_outputs

    def forward(self, image: torch.Tensor, *key: torch.Tensor):
        maps, proto, state = self.features(image, key)
        loc, conf, coef = self.net.heads(maps)
        extra = (loc, conf, coef) if self.network_outputs else ()
        return (*self.detect(loc, conf, coef), proto, *state, *extra)


class Uint8Input(nn.Module):
    """Takes uint8 RGB pixels and normalises them in the graph (prep --dtype uint8)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(MEANS_BGR[::-1]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD_BGR[::-1]).view(1, 3, 1, 1), persistent=False)

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, image: torch.Tensor, *key: torch.Tensor):
        return self.inner((image.to(self.mean.dtype) - self.mean) / self.std, *key)


def export_module(net: Yolact, layout: str, input_dtype: str = "float32",
                  network_outputs: bool = False, video_pass: VideoPass = VideoPass.IMAGE) -> nn.Module:
    """The module export traces; `network_outputs` adds the detect layout's NETWORK_CHECK_OUTPUTS
    (after the key state of a keyframe graph)."""
    if layout == Layout.DETECT.value:
        module: nn.Module = DetectLayout(net, video_pass, network_outputs)
    else:
        module = {Layout.FPN.value: FpnLayout, Layout.HEAD.value: HeadLayout}[layout](net, video_pass)
    return Uint8Input(module) if input_dtype == "uint8" else module
