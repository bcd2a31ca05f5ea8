"""The paper's ResNet built from depthwise-separable convolutions (Part 1).

    model = DSResNet()                 # widths (32, 64, 96, 128): 94,372 parameters
    model = DSResNet(width_factor=2)   # (64, 128, 192, 256): 334,052 parameters

Layout (one reading of the paper that gives exactly its two parameter counts):
    stem      conv3x3 3->w0 (no bias) + BN + ReLU                        32x32
    stage i   one residual block of two DS units, w_{i-1} -> w_i        32, 16, 8, 4 pixels
              shortcut: identity when widths match, else conv1x1 (no bias) + BN
    head      global average pool -> Linear(w3, 100)
Stages 2-4 halve the resolution with stride 2 in the first unit's depthwise conv (and in the
projection shortcut).
"""
from __future__ import annotations

import torch
from torch import nn

PAPER_WIDTHS = (32, 64, 96, 128)


class DepthwiseSeparableConv(nn.Module):
    """A depthwise k x k conv (one filter per input channel) + BN + ReLU, then a pointwise 1x1
    conv that mixes channels + BN (+ ReLU unless `final_relu=False`). Eq. (1)-(2) of the paper.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 final_relu: bool = True):
        super().__init__()
        # eq. (1): G[k, l, m] = sum_{i, j} K[i, j, m] * F[k + i - 1, l + j - 1, m], one filter per channel m
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding=kernel_size // 2,
                                   groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depthwise.stride[0] > 1:
            # On a CPU, PyTorch's strided depthwise conv (forward + backward) ran 4-48x slower in
            # bf16 than in fp32 (benchmarks/depthwise_conv.py), so under autocast it stays fp32.
            with torch.autocast(x.device.type, enabled=False):
                x = self.depthwise(x.float())
        else:
            x = self.depthwise(x)
        x = torch.relu(self.bn1(x))
        x = self.bn2(self.pointwise(x))
        return torch.relu(x) if self.final_relu else x


class ResidualBlock(nn.Module):
    """relu(DS(DS(x)) + shortcut(x)); the channel change happens in the first pointwise conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.unit1 = DepthwiseSeparableConv(in_channels, out_channels, stride=stride)
        self.unit2 = DepthwiseSeparableConv(out_channels, out_channels, final_relu=False)
        self.shortcut = nn.Identity()
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.unit2(self.unit1(x)) + self.shortcut(x))


class DSResNet(nn.Module):
    """The paper's depthwise-separable ResNet: (B, 3, 32, 32) normalised images -> (B, classes) logits."""

    def __init__(self, widths: tuple[int, ...] = PAPER_WIDTHS, num_classes: int = 100, width_factor: int = 1):
        super().__init__()
        if isinstance(width_factor, bool) or not isinstance(width_factor, int) or width_factor < 1:
            raise ValueError(f"width_factor must be an integer >= 1 (1: the paper's 94,372-parameter model, "
                             f"2: its 334,052-parameter one), got {width_factor!r}")
        widths = tuple(w * width_factor for w in widths)
        self.widths = widths
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        blocks, previous = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(ResidualBlock(previous, width, stride=1 if i == 0 else 2))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))  # adaptive average pool to 1x1
