"""Depthwise 3x3 convolutions, forward + backward, in bf16 against fp32 on this CPU.

DSResNet's depthwise convs run under bf16 autocast where the CPU does bf16 arithmetic
(nbcode.runs.precision), except the three strided ones (stride 2, the first unit of stages 2-4),
which `nbcode.resnet.DepthwiseSeparableConv` runs in fp32. This script shows why: it times each
depthwise conv of the model at its own shape, channels_last, batch 512, in both precisions.

    python benchmarks/depthwise_conv.py [--batch-size 512] [--repeats 5]

Prints the median milliseconds of each conv in each precision, then `ratio: X`, the strided
convs' bf16 time over their fp32 time (above 1: fp32 is faster, as nbcode assumes).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from nbcode.cost import median_seconds
from nbcode.resnet import PAPER_WIDTHS


def forward_backward(channels: int, size: int, stride: int, dtype: torch.dtype, batch: int):
    """A function running one depthwise 3x3 conv (B, C, size, size) -> (B, C, size / stride, size / stride)
    forward and backward in `dtype`, channels_last."""
    x = torch.randn(batch, channels, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weight = torch.randn(channels, 1, 3, 3, dtype=dtype, requires_grad=True)
    gradient = torch.ones(batch, channels, size // stride, size // stride, dtype=dtype)

    def run() -> None:
        F.conv2d(x, weight, None, stride, 1, groups=channels).backward(gradient)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"depthwise 3x3 conv forward + backward, batch {args.batch_size}, channels_last, medians of "
          f"{args.repeats}, cpu, {torch.get_num_threads()} torch threads")
    # the depthwise convs of DSResNet(): (channels, input size, stride)
    shapes = [(PAPER_WIDTHS[0], 32, 1)]
    size = 32
    for before, after in zip(PAPER_WIDTHS, PAPER_WIDTHS[1:]):
        shapes += [(before, size, 2), (after, size // 2, 1)]
        size //= 2
    strided = {torch.bfloat16: 0.0, torch.float32: 0.0}
    for channels, size, stride in shapes:
        ms = {dtype: 1000 * median_seconds(forward_backward(channels, size, stride, dtype, args.batch_size),
                                           repeats=args.repeats, warmup=1)
              for dtype in strided}
        if stride == 2:
            for dtype in strided:
                strided[dtype] += ms[dtype]
        print(f"{channels:4d} channels, {size:2d}x{size:<2d} stride {stride}: bf16 {ms[torch.bfloat16]:7.1f} ms, "
              f"fp32 {ms[torch.float32]:7.1f} ms  (bf16 / fp32 {ms[torch.bfloat16] / ms[torch.float32]:.2f})")
    print(f"ratio: {strided[torch.bfloat16] / strided[torch.float32]:.2f}x  (strided convs, bf16 time / fp32 time; "
          f"above 1: running them in fp32 is faster)")


if __name__ == "__main__":
    main()
