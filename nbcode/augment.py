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


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by `padding` pixels, cut a random H x W window, and mirror it left-right with
    probability 1/2 (when `flip`), each drawn per image.

    Both are one gather: output pixel (r, c) of image b reads padded pixel
    (top_b + r, left_b + c), or (top_b + r, left_b + W - 1 - c) when b is flipped.

    Args:
        images: (B, C, H, W) any dtype.
    Returns:
        (B, C, H, W), same dtype and device.
    """
    b, c, h, w = images.shape
    device = generator_device(generator)
    top = torch.randint(0, 2 * padding + 1, (b, 1, 1), generator=generator, device=device).to(images.device)
    left = torch.randint(0, 2 * padding + 1, (b, 1, 1), generator=generator, device=device).to(images.device)
    mirrored = (torch.rand(b, 1, 1, generator=generator, device=device) < 0.5).to(images.device) & flip
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    cols = torch.where(mirrored, w - 1 - cols, cols) + left
    rows = torch.arange(h, device=images.device).view(1, h, 1) + top
    padded_width = w + 2 * padding
    source = (rows * padded_width + cols).view(b, 1, h * w).expand(b, c, h * w)
    padded = F.pad(images, (padding, padding, padding, padding)).flatten(2)
    return padded.gather(2, source).view(b, c, h, w)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB -> (B, 1, H, W) luma."""
    r, g, b = images.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def adjust_colour(images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                  saturation: torch.Tensor) -> torch.Tensor:
    """Scale brightness, contrast and saturation per image, in that order, as torchvision defines them:
    brightness scales the pixels, contrast blends with the image's mean luma, saturation with the
    pixel's luma, each followed by clipping to [0, 1].

    Args:
        images: (B, 3, H, W) float in [0, 1].
        brightness, contrast, saturation: (B,) factors; 1 leaves the image unchanged.
    Returns:
        (B, 3, H, W) float in [0, 1], a new tensor.
    """
    x = (images * brightness.view(-1, 1, 1, 1)).clamp_(0, 1)
    mean_luma = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x.sub_(mean_luma).mul_(contrast.view(-1, 1, 1, 1)).add_(mean_luma).clamp_(0, 1)
    luma = grayscale(x)
    return x.sub_(luma).mul_(saturation.view(-1, 1, 1, 1)).add_(luma).clamp_(0, 1)


def colour_jitter(images: torch.Tensor, brightness: float, contrast: float, saturation: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """`adjust_colour` with factors drawn per image from [1 - s, 1 + s] for each strength s.

    Args:
        images: (B, 3, H, W) float in [0, 1].
    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    strengths = torch.tensor([brightness, contrast, saturation], device=images.device).view(3, 1)
    u = torch.rand(3, images.shape[0], generator=generator, device=generator_device(generator)).to(images.device)
    factors = 1 + strengths * (2 * u - 1)
    return adjust_colour(images, *factors)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel. images: (B, 3, H, W) float in [0, 1]; mean, std: (3,) in [0, 1] units."""
    return (images - mean.to(images.device).view(1, -1, 1, 1)).div_(std.to(images.device).view(1, -1, 1, 1))


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
        mean, std: (3,) per-channel statistics in [0, 1] units (see `nbcode.data.datasets.channel_stats`).
        generator: a generator on the images' device, or None for the global one.
    Returns:
        (B, 3, H, W) float32, normalised.
    """
    images = random_crop_flip(images, settings.padding, settings.flip, generator)
    x = colour_jitter(to_float(images), settings.brightness, settings.contrast, settings.saturation, generator)
    return normalize(x, mean, std)


def generator_device(generator: torch.Generator | None) -> torch.device | None:
    """The device random numbers from `generator` are drawn on (None: the default generator's, CPU)."""
    return None if generator is None else generator.device
