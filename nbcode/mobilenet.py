"""Inverted residuals with linear bottlenecks (MobileNetV2, Sandler et al., 2018) at the paper's
94,372-parameter budget: the change the paper's Part 1 Limitations expect to help. torch only.

    model = MobileNetV2Small()         # 100 classes: 93,180 parameters (DSResNet: 94,372)
    logits = model(images)             # (B, 3, 32, 32) normalised -> (B, 100)

One inverted residual block (MobileNetV2, Table 1), for an input of k channels, expansion t:
    expand    conv1x1 k -> t*k + BN + ReLU6          (skipped when t = 1)
    filter    depthwise conv3x3 (stride s) + BN + ReLU6
    project   conv1x1 t*k -> k' + BN, no activation  (the *linear* bottleneck)
    add       x + block(x) when s = 1 and k = k'
The DS-ResNet's unit runs thin -> thin (depthwise then pointwise, ReLU after each); this block runs
thin -> wide -> thin and keeps the residual stream linear, so the ReLUs act in the wide space only.

Layout, in the same four resolutions as the DS-ResNet (32, 16, 8, 4 pixels):
    stem      conv3x3 3 -> 16 + BN + ReLU6                                           32x32
    stages    (expansion, width, blocks, stride) of STAGES; stride in the first block of a stage
    head      conv1x1 -> 120 + BN + ReLU6, global average pool, Linear(120, classes)
How the widths were chosen: MobileNetV2's own CIFAR-scale stage pattern (t = 1 first, widths
growing 16 -> 64, one stride per resolution change), cut to 8 blocks and expansions 3-4 (the
paper's t = 6 alone would spend the budget in two blocks), then the head width set to the largest
round value that keeps 100 classes under 94,372 parameters (a dozen candidate layouts counted;
11.3 M multiply-adds per image against the DS-ResNet's 8.1 M). MobileNetV2 ends in a 1x1 conv
to 1,280 channels; 120 is what the budget leaves.
"""
from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, blocks n, stride s) per stage, as MobileNetV2's Table 2 lists them.
STAGES = ((1, 16, 1, 1), (3, 24, 1, 1), (3, 32, 2, 2), (4, 48, 2, 2), (4, 64, 1, 2))
STEM, HEAD = 16, 120


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
            activation: bool = True) -> nn.Sequential:
    """A bias-free conv with "same" padding, BN and (optionally) ReLU6.
    Shapes: (B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if activation else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1), filter (depthwise 3x3), project linearly (1x1); add the input when shapes match.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_channels * expansion
        expand = [conv_bn(in_channels, hidden)] if expansion > 1 else []
        self.block = nn.Sequential(*expand,
                                   conv_bn(hidden, hidden, 3, stride, groups=hidden),       # depthwise
                                   conv_bn(hidden, out_channels, activation=False))        # linear bottleneck
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2Small(nn.Module):
    """A MobileNetV2 of inverted residual blocks: (B, 3, 32, 32) normalised images -> (B, classes) logits."""

    def __init__(self, num_classes: int = 100, stages: tuple[tuple[int, int, int, int], ...] = STAGES,
                 stem: int = STEM, head: int = HEAD):
        super().__init__()
        self.stages = stages
        blocks, previous = [conv_bn(3, stem, 3)], stem
        for expansion, width, count, stride in stages:
            for i in range(count):
                blocks.append(InvertedResidual(previous, width, expansion, stride if i == 0 else 1))
                previous = width
        self.features = nn.Sequential(*blocks, conv_bn(previous, head))
        self.head = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # global average pool to 1x1
