"""Augmented-batch throughput: nbcode's batched tensor pipeline against the common torchvision recipe.

Both pipelines draw shuffled batches of the same in-memory images and apply the same augmentation
(pad-4 random crop, horizontal flip, colour jitter 0.2/0.2/0.2, normalisation):

- reference: PIL images through `transforms.Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
  ColorJitter(0.2, 0.2, 0.2), ToTensor(), Normalize(mean, std)])` in a DataLoader;
- nbcode: `random_batches` + `augment_batch` on uint8 tensors, on the chosen device.

    python benchmarks/data_pipeline.py [--batches 30] [--batch-size 512] [--workers 2]

Prints images/s of each and their ratio (bar: >= 5 on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import time

import torch
from reference import endless, reference_loader

from nbcode.augment import Augmentation, augment_batch
from nbcode.data.datasets import channel_stats, make_synthetic, random_batches
from nbcode.runs.profiles import pick_device


def images_per_second(batches, count: int, batch_size: int, device: torch.device) -> float:
    """Time `count` batches after one warm-up batch; synchronise so GPU work is counted."""
    next(batches)
    start = time.perf_counter()
    for _ in range(count):
        x = next(batches)
        if device.type == "cuda":
            torch.cuda.synchronize()
    del x
    return count * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference")
    args = parser.parse_args()

    data = make_synthetic("train", n=20_000)
    mean, std = channel_stats(data.images)
    device = pick_device()
    print(f"{len(data):,} synthetic 32x32 images, batch {args.batch_size}, {args.batches} timed batches, "
          f"device {device}, {torch.get_num_threads()} torch threads, reference with {args.workers} workers")

    images, labels = data.images.to(device), data.labels.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    ours = ((augment_batch(x, mean, std, Augmentation(), generator), y)
            for x, y in random_batches(images, labels, args.batch_size, seed=0))
    our_rate = images_per_second(ours, args.batches, args.batch_size, device)

    reference = endless(reference_loader(data.images, data.labels, mean, std, args.batch_size, args.workers))
    reference_rate = images_per_second(reference, args.batches, args.batch_size, torch.device("cpu"))

    print(f"torchvision PIL + DataLoader: {reference_rate:10,.0f} images/s")
    print(f"nbcode batched tensors:       {our_rate:10,.0f} images/s")
    print(f"ratio: {our_rate / reference_rate:.1f}x  (bar: >= 5x on a 2-core CPU)")


if __name__ == "__main__":
    main()
