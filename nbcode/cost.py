"""The cost of a model: multiply-adds (the paper's eq. 2), parameters and measured time.

Notation of MobileNets (Howard et al., 2017), used by the paper: a D_F x D_F feature map with
M input and N output channels, a D_K x D_K kernel, stride 1 and "same" padding.
Costs are multiply-adds (MACs); one MAC is two FLOPs.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def standard_conv_macs(d_k: int, m: int, n: int, d_f: int) -> int:
    """D_K * D_K * M * N * D_F * D_F."""
    return d_k * d_k * m * n * d_f * d_f


def separable_conv_macs(d_k: int, m: int, n: int, d_f: int) -> int:
    """Eq. (2): D_K * D_K * M * D_F * D_F (depthwise) + M * N * D_F * D_F (pointwise)."""
    return d_k * d_k * m * d_f * d_f + m * n * d_f * d_f


def standard_conv_params(d_k: int, m: int, n: int) -> int:
    """Weights of a bias-free standard convolution: D_K * D_K * M * N."""
    return d_k * d_k * m * n


def separable_conv_params(d_k: int, m: int, n: int) -> int:
    """Weights of a bias-free depthwise (D_K * D_K * M) plus pointwise (M * N) convolution."""
    return d_k * d_k * m + m * n


def cost_ratio(d_k: int, n: int) -> float:
    """Separable over standard cost, 1/N + 1/D_K^2: independent of M and D_F."""
    return 1 / n + 1 / d_k ** 2


def standard_conv(d_k: int, m: int, n: int) -> nn.Module:
    """A bias-free D_K x D_K convolution M -> N with "same" padding."""
    return nn.Conv2d(m, n, d_k, padding=d_k // 2, bias=False)


def separable_conv(d_k: int, m: int, n: int) -> nn.Module:
    """The two convolutions of a depthwise-separable layer, without BN or ReLU (they cost no MACs)."""
    return nn.Sequential(nn.Conv2d(m, m, d_k, padding=d_k // 2, groups=m, bias=False),  # depthwise, eq. (1)
                         nn.Conv2d(m, n, 1, bias=False))                                # pointwise 1x1


def counted_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass as PyTorch's `FlopCounterMode` counts them (FLOPs / 2)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(input_shape))
    return counter.get_total_flops() // 2


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def median_seconds(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` calls, after `warmup` untimed calls.
    CUDA work is synchronised before each clock reading."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
