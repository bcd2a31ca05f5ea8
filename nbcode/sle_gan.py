"""A generator with the changes the paper's Part 2 Limitations suggest: FastGAN's skip-layer
excitation (Liu et al., 2021) and depthwise-separable convolutions, inside Table 1's parameter
budget. It pairs with Table 1's discriminator (nbcode.gan). torch only: copy with gan.py,
normalization.py and projection.py.

    g, d = SLEGenerator(), Discriminator()       # 551,427 + 390,417 = 941,844 parameters (budget 942,812)
    images = g(torch.randn(8, 128), labels)      # (8, 3, 32, 32) in [-1, 1]

Skip-layer excitation (FastGAN, eq. 1): y = F(x_low) * x_high, where F is
    AdaptiveAvgPool(4) -> conv4x4 (valid: 4x4 -> 1x1) -> LeakyReLU(0.1) -> conv1x1 -> sigmoid,
one gate in (0, 1) per channel of x_high: a low-resolution map re-weights the channels of a
high-resolution one, a shortcut for gradients across two resolutions at the price of two small
convs. Here 4x4 gates 16x16, and 8x8 gates 32x32 (FastGAN: 8 -> 128, 16 -> 256, 32 -> 512).

Layout (Table 1's widths 128, 64, 64, 32 kept):
    z (128) -> Linear -> 4x4x128 -> CBN + LeakyReLU
    three up blocks: nearest x2 upsample, DS conv a -> b, CBN + LeakyReLU, DS conv b -> b, CBN + LeakyReLU
    conv3x3 32 -> 3, tanh
A DS conv (depthwise 3x3 then pointwise 1x1, eq. 1-2 of the paper) after a nearest upsample
replaces each 4x4 transposed conv (FastGAN's up block, with its 3x3 convs made separable): it
frees ~213k parameters, which pay for the second conv of each block and the two SLE modules.
"""
from __future__ import annotations

import torch
from torch import nn

from nbcode.gan import LATENT, SLOPE, check_generator_inputs
from nbcode.normalization import ConditionalBatchNorm2d


def separable(in_channels: int, out_channels: int) -> nn.Sequential:
    """Depthwise conv3x3 then pointwise conv1x1: (B, in, H, W) -> (B, out, H, W)."""
    return nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
                         nn.Conv2d(in_channels, out_channels, 1))


class SkipLayerExcitation(nn.Module):
    """FastGAN's SLE: x_low (B, C_low, h, w) with h, w >= 4 and x_high (B, C_high, H, W) ->
    x_high scaled per channel by gates in (0, 1) computed from x_low, shape (B, C_high, H, W)."""

    def __init__(self, low_channels: int, high_channels: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(low_channels, high_channels, 4),
                                  nn.LeakyReLU(0.1), nn.Conv2d(high_channels, high_channels, 1), nn.Sigmoid())

    def forward(self, x_low: torch.Tensor, x_high: torch.Tensor) -> torch.Tensor:
        return x_high * self.gate(x_low)  # (B, C_high, 1, 1) broadcast over H, W


class SLEGenerator(nn.Module):
    """z (B, 128) and labels (B,) -> images (B, 3, 32, 32) in [-1, 1]; num_classes=0: unconditional."""

    def __init__(self, num_classes: int = 100, latent: int = LATENT, widths: tuple[int, ...] = (128, 64, 64, 32)):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"expected four widths (4x4, 8x8, 16x16, 32x32 maps), got {widths!r}")
        self.num_classes, self.latent, self.widths = num_classes, latent, widths
        self.linear = nn.Linear(latent, 4 * 4 * widths[0])
        self.convs = nn.ModuleList()
        for a, b in zip(widths, widths[1:]):
            self.convs.extend([separable(a, b), separable(b, b)])
        norm_widths = [widths[0], *(w for w in widths[1:] for _ in range(2))]
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(w, num_classes) if num_classes else nn.BatchNorm2d(w)
                                   for w in norm_widths)
        self.sle_16 = SkipLayerExcitation(widths[0], widths[2])   # 4x4 gates 16x16
        self.sle_32 = SkipLayerExcitation(widths[1], widths[3])   # 8x8 gates 32x32
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def normalise(self, i: int, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.norms[i](x, labels) if self.num_classes else self.norms[i](x)
        return nn.functional.leaky_relu(x, SLOPE)

    def up_block(self, i: int, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Up block i (0, 1, 2): (B, widths[i], s, s) -> (B, widths[i + 1], 2s, 2s)."""
        x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        x = self.normalise(2 * i + 1, self.convs[2 * i](x), labels)
        return self.normalise(2 * i + 2, self.convs[2 * i + 1](x), labels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_generator_inputs(z, labels, self.latent, self.num_classes)
        x4 = self.normalise(0, self.linear(z).view(-1, self.widths[0], 4, 4), labels)
        x8 = self.up_block(0, x4, labels)
        x16 = self.sle_16(x4, self.up_block(1, x8, labels))
        x32 = self.sle_32(x8, self.up_block(2, x16, labels))
        return torch.tanh(self.to_rgb(x32))
