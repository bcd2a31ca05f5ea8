"""Training throughput of nbcode's classifier loop against a plain reference loop, same model.

- reference: torchvision DataLoader with PIL transforms (crop, flip, jitter, ToTensor, Normalize),
  NCHW tensors, `loss.backward(); optimizer.step()`, PyTorch and glibc defaults; it runs first;
- nbcode: `nbcode.train.training_batch` (in-memory uint8 images, batched augmentation on the
  device) and `training_step` on a channels_last model, in the precision nbcode trains at
  (`nbcode.precision.training_dtype`: bf16 autocast on CPUs with AVX512-BF16/AMX, else fp32;
  `--precision fp32` forces fp32), after `nbcode.allocator.keep_freed_memory()` as
  `train_classifier` calls it (a process-wide setting, hence the order).

Both train the 94,372-parameter DSResNet with Adam at the same batch size on the same images.

    python benchmarks/classifier_step.py [--steps 10] [--batch-size 512] [--workers 2] [--precision fp32]

Prints images/s of each and the ratio (bar: >= 3x), and the share of nbcode's step time spent
outside forward, backward and the optimiser step (bar: <= 10%).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from reference import endless, reference_loader

from nbcode.allocator import keep_freed_memory
from nbcode.augment import Augmentation
from nbcode.data import channel_stats, make_synthetic
from nbcode.precision import CHOICES, precision_name, training_dtype
from nbcode.profiles import pick_device
from nbcode.resnet import DSResNet
from nbcode.train import training_batch, training_step


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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

    torch.manual_seed(0)
    model = DSResNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = endless(reference_loader(data.images, data.labels, mean, std, args.batch_size, args.workers))
    for step in range(args.steps + 1):
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
    reference = args.steps * args.batch_size / (time.perf_counter() - start)
    del batches  # stops the DataLoader's worker processes

    keep_freed_memory()  # as nbcode's train_classifier does, after the reference ran with the defaults
    torch.manual_seed(0)
    model = DSResNet().to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = data.images.to(device), data.labels.to(device)
    outside = inside = 0.0
    for step in range(args.steps + 1):
        synchronise(device)
        start = time.perf_counter()
        x, y = training_batch(images, labels, args.batch_size, step, 0, mean, std, Augmentation())
        synchronise(device)
        middle = time.perf_counter()
        training_step(model, optimizer, x, y, dtype=dtype)
        synchronise(device)
        if step > 0:  # the first step warms up
            outside += middle - start
            inside += time.perf_counter() - middle
    ours = args.steps * args.batch_size / (outside + inside)

    print(f"reference loop (DataLoader + PIL, NCHW): {reference:8,.1f} images/s")
    print(f"nbcode loop (batched tensors, NHWC, {precision_name(dtype)}): {ours:8,.1f} images/s")
    print(f"ratio: {ours / reference:.2f}x  (bar: >= 3x)")
    print(f"nbcode: {100 * outside / (outside + inside):.1f}% of step time outside forward, backward and "
          f"optimizer step (bar: <= 10%)")


if __name__ == "__main__":
    main()
