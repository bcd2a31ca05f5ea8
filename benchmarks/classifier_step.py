"""Training throughput of nbcode's classifier loop against a plain reference loop, same model.

- reference: torchvision DataLoader with PIL transforms (crop, flip, jitter, ToTensor, Normalize),
  NCHW tensors, `loss.backward(); optimizer.step()`, PyTorch and glibc defaults; it runs first;
- nbcode: `nbcode.classifier_recipe.classifier_step` (in-memory uint8 images, batched augmentation on
  the device, then the step) on a channels_last model, in the precision nbcode trains at
  (`nbcode.runs.precision.training_dtype`: bf16 autocast on CPUs with AVX512-BF16/AMX, else fp32;
  `--precision fp32` forces fp32), after `nbcode.runs.allocator.keep_freed_memory()` as
  `train_classifier` calls it (a process-wide setting, hence the order).

Both train the 94,372-parameter DSResNet with Adam at the same batch size on the same images.

    python benchmarks/classifier_step.py [--steps 10] [--batch-size 512] [--workers 2] [--precision fp32]

Prints images/s of each (nbcode's step includes drawing and augmenting its batch) and the ratio
(bar: >= 3x).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from reference import endless, reference_loader

from nbcode.classifier_recipe import RECIPES, classifier_step
from nbcode.data.datasets import ImageData, batch_indices, channel_stats, make_synthetic
from nbcode.resnet import DSResNet
from nbcode.runs.allocator import keep_freed_memory
from nbcode.runs.precision import CHOICES, precision_name, training_dtype
from nbcode.runs.profiles import pick_device


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only), so a timer reads the work done."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_rate(data: ImageData, mean: torch.Tensor, std: torch.Tensor, batch_size: int, workers: int,
                   steps: int, device: torch.device) -> float:
    """Images/s of the textbook loop (DataLoader + PIL, NCHW, fp32) over `steps` steps after one
    warm-up step, under the process's default allocator settings."""
    torch.manual_seed(0)
    model = DSResNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = endless(reference_loader(data.images, data.labels, mean, std, batch_size, workers))
    for step in range(steps + 1):
        if step == 1:
            synchronise(device)
            start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    synchronise(device)
    rate = steps * batch_size / (time.perf_counter() - start)
    del batches  # stops the DataLoader's worker processes
    return rate


def nbcode_rate(data: ImageData, mean: torch.Tensor, std: torch.Tensor, batch_size: int, steps: int,
                device: torch.device, dtype: torch.dtype) -> float:
    """Images/s of nbcode's `classifier_step` (batched tensors on the device, NHWC, `dtype`) over
    `steps` steps after one warm-up step, timed inside the step only."""
    torch.manual_seed(0)
    model = DSResNet().to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    recipe = RECIPES["paper"]  # the reference's augmentation and plain cross-entropy
    images, labels = data.images.to(device), data.labels.to(device)
    inside = 0.0
    for step in range(steps + 1):
        synchronise(device)
        start = time.perf_counter()
        index = batch_indices(len(labels), batch_size, step, 0).to(device)
        rng = torch.Generator(device=device).manual_seed(step)
        classifier_step(model, optimizer, schedule, images[index], labels[index], mean, std, recipe, rng, dtype)
        synchronise(device)
        if step > 0:  # the first step warms up
            inside += time.perf_counter() - start
    return steps * batch_size / inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each loop, after one warm-up step")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference")
    parser.add_argument("--precision", choices=CHOICES, default=None, help="default: $NBCODE_PRECISION or auto")
    args = parser.parse_args()
    device = pick_device()
    dtype = training_dtype(device, args.precision)
    data = make_synthetic("train", n=20_000)
    mean, std = channel_stats(data.images)
    print(f"DSResNet (94,372 parameters), Adam, batch {args.batch_size}, {args.steps} timed steps each, "
          f"{len(data):,} synthetic images, device {device}, {torch.get_num_threads()} torch threads, "
          f"nbcode precision {precision_name(dtype)}")
    reference = reference_rate(data, mean, std, args.batch_size, args.workers, args.steps, device)
    keep_freed_memory()  # as nbcode's train_classifier does, after the reference ran with the defaults
    ours = nbcode_rate(data, mean, std, args.batch_size, args.steps, device, dtype)
    print(f"reference loop (DataLoader + PIL, NCHW): {reference:8,.1f} images/s")
    print(f"nbcode loop (batched tensors, NHWC, {precision_name(dtype)}): {ours:8,.1f} images/s")
    print(f"ratio: {ours / reference:.2f}x  (bar: >= 3x)")

if __name__ == "__main__":
    main()
