"""The projection discriminator head (Miyato & Koyama, 2018), the paper's eq. (7):

    f(x, y) = y^T V phi(x) + psi(phi(x))

phi(x) (B, F) are the discriminator's features, y a one-hot label, V (num_classes, F) a class
embedding and psi a linear map to a scalar. y^T V is just row y of V, so the class term is an
embedding lookup and a dot product: no one-hot vector is ever built.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nbcode.normalization import check_labels, spectral_norm


class ProjectionHead(nn.Module):
    """psi(phi) + <V[y], phi>, with spectral normalisation on psi and V.

    With num_classes=0 the head is unconditional: psi(phi) only, and labels must be None.
    """

    def __init__(self, features: int, num_classes: int, sn: Callable[[nn.Module], nn.Module] = spectral_norm):
        super().__init__()
        self.features = features
        self.num_classes = num_classes
        self.psi = sn(nn.Linear(features, 1))
        self.embed = sn(nn.Embedding(num_classes, features)) if num_classes else None

    def forward(self, phi: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """phi: (B, F) features; labels: (B,) int64 in [0, num_classes), or None when unconditional.
        Returns (B,) scores."""
        if phi.dim() != 2 or phi.shape[1] != self.features:
            raise ValueError(f"expected features of shape (B, {self.features}), got {tuple(phi.shape)}")
        score = self.psi(phi).squeeze(1)
        if self.embed is None:
            if labels is not None:
                raise ValueError("this head is unconditional (num_classes=0): pass labels=None")
            return score
        if labels is None:
            raise ValueError(f"this head is conditional on {self.num_classes} classes: pass labels")
        check_labels(labels, phi.shape[0], self.num_classes)
        return score + (self.embed(labels) * phi).sum(dim=1)  # eq. (7): y^T V phi(x)
