"""The conditional SN-GAN of the paper's Table 1 (Part 2).

    g, d = Generator(), Discriminator()          # 552,195 + 390,417 = 942,612 parameters
    images = g(torch.randn(8, 128), labels)      # (8, 3, 32, 32) in [-1, 1]
    scores = d(images, labels)                   # (8,) raw scores

Our reading of Table 1:
    generator      z (128) -> Linear -> 4x4x128 -> CBN + LeakyReLU
                   ConvTranspose k4 s2: 128->64 (8x8), 64->64 (16x16), 64->32 (32x32), each CBN + LeakyReLU
                   conv3x3 32->3, tanh
    discriminator  seven SN convs, 3->16->16->32->32->64->64->128, alternating k3 s1 and k4 s2
                   (32x32 -> 4x4), LeakyReLU; flatten (2048) -> SN linear psi + SN class embedding V
                   (the projection head, eq. 7)
With num_classes=0 both are unconditional: plain BatchNorm in G, no embedding in D.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nbcode.normalization import ConditionalBatchNorm2d, check_labels, spectral_norm
from nbcode.projection import ProjectionHead

LATENT = 128
SLOPE = 0.2  # LeakyReLU negative slope


def to_gan_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]. images: (B, 3, H, W)."""
    return images.float().div(127.5).sub(1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]. images: (B, 3, H, W).

    Raises:
        ValueError: an image holds NaN or infinity (a diverged generator): converting would give
            black or saturated pixels that score like real, if poor, samples.
    """
    if not torch.isfinite(images).all():
        raise ValueError(f"{int((~torch.isfinite(images)).sum())} of {images.numel()} pixel values are NaN or "
                         f"infinite: the generator has diverged; retrain it (a lower learning rate) before scoring")
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def check_generator_inputs(z: torch.Tensor, labels: torch.Tensor | None, latent: int, num_classes: int) -> None:
    """Raise a ValueError unless z is (B, latent) and labels fit the generator: (B,) class indices
    below `num_classes` for a conditional one, None for an unconditional one (num_classes=0)."""
    if z.dim() != 2 or z.shape[1] != latent:
        raise ValueError(f"expected z of shape (B, {latent}), got {tuple(z.shape)}")
    if num_classes:
        if labels is None:
            raise ValueError(f"this generator is conditional on {num_classes} classes: pass labels")
        check_labels(labels, z.shape[0], num_classes)
    elif labels is not None:
        raise ValueError("this generator is unconditional (num_classes=0): pass labels=None")


class Generator(nn.Module):
    """z (B, 128) and labels (B,) -> images (B, 3, 32, 32) in [-1, 1]."""

    def __init__(self, num_classes: int = 100, latent: int = LATENT, widths: tuple[int, ...] = (128, 64, 64, 32)):
        super().__init__()
        self.num_classes = num_classes
        self.latent = latent
        self.widths = widths
        self.linear = nn.Linear(latent, 4 * 4 * widths[0])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.norms = nn.ModuleList(
            ConditionalBatchNorm2d(w, num_classes) if num_classes else nn.BatchNorm2d(w, affine=True) for w in widths)
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def normalise(self, i: int, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        norm = self.norms[i]
        x = norm(x, labels) if self.num_classes else norm(x)
        return nn.functional.leaky_relu(x, SLOPE, inplace=True)  # x is a fresh tensor here

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_generator_inputs(z, labels, self.latent, self.num_classes)
        x = self.normalise(0, self.linear(z).view(-1, self.widths[0], 4, 4), labels)
        for i, up in enumerate(self.ups, start=1):
            x = self.normalise(i, up(x), labels)
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """images (B, 3, 32, 32) in [-1, 1] and labels (B,) -> raw scores (B,)."""

    def __init__(self, num_classes: int = 100, widths: tuple[int, ...] = (16, 16, 32, 32, 64, 64, 128),
                 sn: Callable[[nn.Module], nn.Module] = spectral_norm):
        """`sn` normalises each layer: nbcode's own spectral_norm, or e.g. torch.nn.utils.spectral_norm."""
        super().__init__()
        self.num_classes = num_classes
        layers, previous = [], 3
        for i, width in enumerate(widths):
            kernel, stride = (3, 1) if i % 2 == 0 else (4, 2)
            layers += [sn(nn.Conv2d(previous, width, kernel, stride, padding=1)), nn.LeakyReLU(SLOPE, inplace=True)]
            previous = width
        self.features = nn.Sequential(*layers)
        size = 32 // 2 ** (len(widths) // 2)
        self.head = ProjectionHead(previous * size * size, num_classes, sn)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1:] != (3, 32, 32):
            raise ValueError(f"expected images of shape (B, 3, 32, 32), got {tuple(images.shape)}")
        return self.head(self.features(images).flatten(1), labels)


LAYER_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding, nn.BatchNorm2d)


def parameters_per_layer(model: nn.Module) -> list[tuple[str, str, int]]:
    """(name, type, parameter count) of every layer that holds parameters; they sum to the total.
    A spectrally normalised layer counts its raw weight."""
    return [(name, type(m).__name__, sum(p.numel() for p in m.parameters()))
            for name, m in model.named_modules() if isinstance(m, LAYER_TYPES) and any(True for _ in m.parameters())]
