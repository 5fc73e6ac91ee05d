"""Backbones: ResNet (v1.5 Bottleneck) and MobileNetV2, with the reference's module names.

Each returns the stage outputs named by `selected_layers` (C3, C4, C5), which feed the FPN.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import BackboneConfig


def selected_outputs(layers: nn.ModuleList, selected: tuple[int, ...], x: torch.Tensor) -> list[torch.Tensor]:
    """Run the stages in order and keep the outputs of the selected ones. The reference also runs
    the stages after the last selected one (MobileNetV2's 320/1280-channel tail), whose output
    nobody reads; we stop there (identical outputs, less work)."""
    outs = []
    for index, layer in enumerate(layers[: max(selected) + 1]):
        x = layer(x)
        if index in selected:
            outs.append(x)
    return outs


class Bottleneck(nn.Module):
    """ResNet bottleneck with the stride on the 3×3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample if downsample is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class ResNetBackbone(nn.Module):
    def __init__(self, blocks: tuple[int, ...], selected_layers: tuple[int, ...]):
        super().__init__()
        self.selected_layers = selected_layers
        # `layers` is registered before the stem so the state_dict order matches the reference.
        self.layers = nn.ModuleList()
        inplanes = 64
        for stage, count in enumerate(blocks):
            planes = 64 * 2**stage
            stride = 1 if stage == 0 else 2
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
            stage_blocks = [Bottleneck(inplanes, planes, stride, downsample)]
            inplanes = planes * Bottleneck.expansion
            stage_blocks += [Bottleneck(inplanes, planes, 1, None) for _ in range(count - 1)]
            self.layers.append(nn.Sequential(*stage_blocks))
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return selected_outputs(self.layers, self.selected_layers, self._stem(x))

    def c3(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and the first two stages only: the non-keyframe pass of the video configs
        (the reference's `partial_backbone`, a copy of these weights)."""
        return self.layers[1](self.layers[0](self._stem(x)))

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def _conv_bn_relu6(inp: int, oup: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(inp, hidden, 1, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (expansion t, channels c, repeats n, stride s) of MobileNetV2 at width 1.0.
MOBILENETV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2Backbone(nn.Module):
    def __init__(self, selected_layers: tuple[int, ...]):
        super().__init__()
        self.selected_layers = selected_layers
        self.layers = nn.ModuleList([_conv_bn_relu6(3, 32, 3, 2)])
        inp = 32
        for t, c, n, s in MOBILENETV2_SETTINGS:
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
            self.layers.append(nn.Sequential(*blocks))
        self.layers.append(_conv_bn_relu6(inp, 1280, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return selected_outputs(self.layers, self.selected_layers, x)


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    if cfg.kind == "resnet":
        return ResNetBackbone(cfg.resnet_blocks, cfg.selected_layers)
    return MobileNetV2Backbone(cfg.selected_layers)
