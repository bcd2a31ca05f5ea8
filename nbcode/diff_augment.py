"""Differentiable augmentation of the discriminator's inputs, real and generated alike (DiffAugment:
Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS
2020). torch and the standard library only: copy this file with augment.py.

Every operation is a differentiable function of the pixels, so the generator's loss back-propagates
through the augmentation of its images; D never sees an unaugmented image, and so it cannot learn
to tell the augmentation itself from the data. The strengths are those of the authors' code.

    x = diff_augment(images, ("colour", "translation", "cutout"), generator)  # (B, 3, 32, 32) in [-1, 1]
"""
from __future__ import annotations

import torch

from nbcode.augment import generator_device, random_crop_flip

POLICIES = ("colour", "translation", "cutout")


def check_policy(policy: tuple[str, ...]) -> None:
    """Raise a ValueError naming the valid operations unless every entry of `policy` is one of POLICIES."""
    unknown = [name for name in policy if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment operation(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(POLICIES)}")


def _uniform(images: torch.Tensor, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """(B, 1, 1, 1) factors drawn from [low, high), one per image, on the images' device and dtype."""
    draw = torch.rand(len(images), 1, 1, 1, generator=generator, device=generator_device(generator))
    return (low + (high - low) * draw).to(images.device, images.dtype)


def random_colour(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image: add a brightness offset from [-0.5, 0.5), scale the saturation (distance to the
    pixel's channel mean) by [0, 2), scale the contrast (distance to the image mean) by [0.5, 1.5).
    images: (B, 3, H, W) float in [-1, 1] (the result may leave that range, as in the authors' code)."""
    x = images + _uniform(images, -0.5, 0.5, generator)
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * _uniform(images, 0.0, 2.0, generator)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * _uniform(images, 0.5, 1.5, generator)


def random_translation(images: torch.Tensor, fraction: float = 0.125,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by up to `fraction` of its size in each direction (4 pixels at 32 x 32),
    filling with zeros (mid-grey in [-1, 1]): a random crop of the zero-padded image, one gather."""
    return random_crop_flip(images, padding=round(fraction * images.shape[-1]), flip=False, generator=generator)


def random_cutout(images: torch.Tensor, fraction: float = 0.5,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a square of side `fraction` of the image size (16 pixels at 32 x 32) at a random
    centre per image (the square may overhang the border). images: (B, C, H, W) float."""
    b, _, h, w = images.shape
    size, device = round(fraction * h), generator_device(generator)
    top = torch.randint(0, h + 1, (b, 1, 1), generator=generator, device=device).to(images.device) - size // 2
    left = torch.randint(0, w + 1, (b, 1, 1), generator=generator, device=device).to(images.device) - size // 2
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images * (~inside).unsqueeze(1).to(images.dtype)


def diff_augment(images: torch.Tensor, policy: tuple[str, ...],
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the operations of `policy` in the authors' order (colour, translation, cutout), each
    drawn per image. images: (B, 3, H, W) float in [-1, 1]; returns the same shape, channels_last
    (the layout of build_gan's discriminator). An empty policy returns the images unchanged."""
    check_policy(policy)
    if "colour" in policy:
        images = random_colour(images, generator)
    if "translation" in policy:
        images = random_translation(images, generator=generator)
    if "cutout" in policy:
        images = random_cutout(images, generator=generator)
    return images.contiguous(memory_format=torch.channels_last)
