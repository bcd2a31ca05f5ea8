"""Normalisation layers of the GAN: spectral normalisation and conditional batch norm.

    conv = spectral_norm(nn.Conv2d(3, 16, 3, padding=1))   # weight becomes W / sigma(W)
    bn = ConditionalBatchNorm2d(128, num_classes=100)      # bn(x, labels)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class SpectralNorm(nn.Module):
    """A parametrisation that divides a weight by its largest singular value, W / sigma(W)
    (Miyato et al., 2018), estimated by power iteration.

    The weight is seen as a matrix of shape (out, in * k * k): rows are output units. The unit
    vectors u (out,) and v (in * k * k,) persist as buffers between calls. Each forward in training
    mode runs `n_power_iterations` steps of

        u <- W v / ||W v||,   v <- W^T u / ||W^T u||

    and then sigma = u^T W v. Gradients flow through W in sigma, not through u and v. In eval mode
    u and v stay as they are. The latest estimate is kept in the buffer `sigma`. All of it runs in
    the weight's precision (fp32), also inside a bf16 autocast region.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, eps: float = 1e-12):
        super().__init__()
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        matrix = weight.detach().flatten(1)
        u = F.normalize(torch.randn(matrix.shape[0], dtype=weight.dtype, device=weight.device), dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("v", F.normalize(matrix.T @ u, dim=0, eps=eps))
        self.register_buffer("sigma", torch.ones((), dtype=weight.dtype, device=weight.device))

    @torch.no_grad()
    def power_iteration(self, matrix: torch.Tensor, steps: int) -> None:
        """Refine u and v in place: `steps` alternating multiplications by W and W^T."""
        for _ in range(steps):
            self.u = F.normalize(matrix @ self.v, dim=0, eps=self.eps)
            self.v = F.normalize(matrix.T @ self.u, dim=0, eps=self.eps)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """weight: (out, ...) -> weight / sigma, same shape."""
        matrix = weight.flatten(1)
        with torch.autocast(weight.device.type, enabled=False):  # no bf16 matrix products here
            if self.training:
                self.power_iteration(matrix, self.n_power_iterations)
            sigma = torch.dot(self.u, matrix @ self.v)  # u^T W v
        self.sigma = sigma.detach()
        return weight / sigma


def spectral_norm(layer: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Make `layer.weight` spectrally normalised (in place) and return the layer.

    Works for Linear, Conv2d and Embedding: any layer whose weight has output units on dim 0.
    The raw weight is then `layer.parametrizations.weight.original`; the estimate of sigma is
    `layer.parametrizations.weight[0].sigma`.
    """
    if isinstance(layer, nn.ConvTranspose2d):
        raise TypeError("ConvTranspose2d keeps output units on dim 1; this SpectralNorm expects them on dim 0")
    parametrize.register_parametrization(layer, "weight", SpectralNorm(layer.weight, n_power_iterations))
    return layer


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are looked up per class (de Vries et al., 2017; Miyato & Koyama, 2018).

    out = gamma[y] * BN(x) + beta[y], with BN without affine parameters. The embedding holds
    2C numbers per class, gains first, initialised to gain 1 and bias 0: at the start every class
    behaves as plain batch norm.
    """

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.embed = nn.Embedding(num_classes, 2 * num_features)
        with torch.no_grad():
            self.embed.weight[:, :num_features].fill_(1.0)
            self.embed.weight[:, num_features:].zero_()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float; labels: (B,) int64 in [0, num_classes). Returns (B, C, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"expected x of shape (B, {self.num_features}, H, W), got {tuple(x.shape)}")
        check_labels(labels, x.shape[0], self.num_classes)
        gain, bias = self.embed(labels).chunk(2, dim=1)
        return torch.addcmul(bias[:, :, None, None], gain[:, :, None, None], self.bn(x))  # gain * BN(x) + bias


def check_labels(labels: torch.Tensor, batch_size: int, num_classes: int) -> None:
    """Raise a ValueError unless labels is a (batch_size,) integer tensor with values in [0, num_classes)
    (a TypeError for labels that are not a tensor, e.g. a Python list)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"expected labels as a ({batch_size},) integer tensor, got a {type(labels).__name__}; "
                        f"convert with torch.tensor(labels)")
    if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (batch_size,):
        raise ValueError(f"expected labels as a ({batch_size},) integer tensor, got {labels.dtype} "
                         f"of shape {tuple(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got values from {labels.min().item()} "
                         f"to {labels.max().item()}")
