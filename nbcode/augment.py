"""Batched data augmentation on uint8 image tensors, on whatever device the batch lives on.

One call augments a whole batch with tensor operations: no per-image PIL work, no DataLoader
workers. The random choices match torchvision's `RandomCrop(32, padding=4)`,
`RandomHorizontalFlip()` and `ColorJitter(brightness, contrast, saturation)`, drawn per image.

    x = augment_batch(images_uint8, mean, std, Augmentation(), generator)  # (B, 3, 32, 32) float
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class Augmentation:
    """Settings of `augment_batch`. Jitter strengths s give factors drawn from [1 - s, 1 + s]."""

    padding: int = 4
    flip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by `padding` pixels, then cut a random H x W window per image.

    Args:
        images: (B, C, H, W) any dtype.
    Returns:
        (B, C, H, W), same dtype and device.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=generator_device(generator))
    left = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=generator_device(generator))
    rows = (top.to(images.device) + torch.arange(h, device=images.device)).view(b, 1, h, 1)
    cols = (left.to(images.device) + torch.arange(w, device=images.device)).view(b, 1, 1, w)
    batch = torch.arange(b, device=images.device).view(b, 1, 1, 1)
    channel = torch.arange(c, device=images.device).view(1, c, 1, 1)
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2. images: (B, C, H, W)."""
    flip = torch.rand(images.shape[0], generator=generator, device=generator_device(generator)) < 0.5
    return torch.where(flip.to(images.device).view(-1, 1, 1, 1), images.flip(3), images)


def _factors(n: int, strength: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n, 1, 1, 1) factors drawn uniformly from [1 - strength, 1 + strength]."""
    u = torch.rand(n, 1, 1, 1, generator=generator, device=generator_device(generator)).to(device)
    return 1 + strength * (2 * u - 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB -> (B, 1, H, W) luma."""
    r, g, b = images.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def colour_jitter(images: torch.Tensor, brightness: float, contrast: float, saturation: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation per image, in that order, as torchvision defines them.

    Args:
        images: (B, 3, H, W) float in [0, 1].
    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    n, device = images.shape[0], images.device
    if brightness:
        images = (images * _factors(n, brightness, generator, device)).clamp(0, 1)
    if contrast:
        mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
        images = torch.lerp(mean, images, _factors(n, contrast, generator, device)).clamp(0, 1)
    if saturation:
        images = torch.lerp(grayscale(images), images, _factors(n, saturation, generator, device)).clamp(0, 1)
    return images


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel. images: (B, 3, H, W) float in [0, 1]; mean, std: (3,) in [0, 1] units."""
    return (images - mean.to(images.device).view(1, -1, 1, 1)) / std.to(images.device).view(1, -1, 1, 1)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]."""
    return images.float().div_(255)


def prepare_batch(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The evaluation path: uint8 (B, 3, H, W) -> normalised float, no randomness."""
    return normalize(to_float(images), mean, std)


def augment_batch(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                  settings: Augmentation = Augmentation(),
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The training path: crop, flip, colour jitter, normalise.

    Args:
        images: (B, 3, H, W) uint8 on the training device.
        mean, std: (3,) per-channel statistics in [0, 1] units (see `nbcode.data.channel_stats`).
        generator: a generator on the images' device, or None for the global one.
    Returns:
        (B, 3, H, W) float32, normalised.
    """
    if settings.padding:
        images = random_crop(images, settings.padding, generator)
    if settings.flip:
        images = random_flip(images, generator)
    x = colour_jitter(to_float(images), settings.brightness, settings.contrast, settings.saturation, generator)
    return normalize(x, mean, std)


def generator_device(generator: torch.Generator | None) -> torch.device | None:
    """The device random numbers from `generator` are drawn on (None: the default generator's, CPU)."""
    return None if generator is None else generator.device
