"""Figures shared by the notebooks."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8,
               title: str = "", size: float = 1.3, title_loc: str = "center") -> Figure:
    """A grid of small images with optional per-image titles.

    Args:
        images: (N, 3, H, W) uint8, or float in [0, 1].
        titles: N short captions, or None.
        size: inches per image.
        title_loc: where each caption sits over its image ("left": it starts at the image's left
            edge and may run on over the next images, for a caption per row).
    """
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)),
                             squeeze=False)
    pictures = images.float() / 255 if images.dtype == torch.uint8 else images.clamp(0, 1)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(pictures[i].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=7, loc=title_loc)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def smoothing_window(n: int, points: int = 50) -> int:
    """The window of `moving_average` for a curve of n values: n // points, at least 1."""
    return max(1, n // points)


def moving_average(values: Sequence[float], points: int = 50) -> np.ndarray:
    """A training curve smoothed by its mean over `smoothing_window(len(values), points)` consecutive
    values, one output per full window position: (len(values) - window + 1,)."""
    window = smoothing_window(len(values), points)
    return np.convolve(values, np.ones(window) / window, mode="valid")
