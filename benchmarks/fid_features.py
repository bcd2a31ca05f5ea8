"""FID Inception features: nbcode's extractor against torch-fidelity's default path.

Both are torch-fidelity's `inception-v3-compat` network with the same weights (torch-fidelity's
download when present, else the offline fid-helper conversion); nbcode stores its weights
channels_last, with each batch norm folded into its convolution
(`nbcode.metrics.inception.ChannelsLastInceptionV3`), and feeds it `nbcode.metrics.inception.FEATURE_BATCH`
images at a time, where the default path feeds torch-fidelity's default batch size; nbcode's
`fid_kid` also calls `nbcode.runs.allocator.keep_freed_memory()`. On the same uint8 images the script
times the features of the default path, and of the default network at nbcode's batch size (so
the share of each change shows), each in interleaved rounds under the process's default
allocator settings; then it calls `keep_freed_memory()` (process-wide, hence the order) and times
nbcode's path; the best round of each counts. Then it computes FID of two image sets through
`torch_fidelity.calculate_metrics` with each path.

    python benchmarks/fid_features.py [--images 192] [--rounds 3]

Prints images/s of each, the largest feature difference, both FIDs and their relative
difference (bar: <= 0.5%), and last the speed ratio of nbcode's path to the default path
(bar: >= 2x).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch_fidelity
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from nbcode.metrics.fid import UInt8Images, inception_weights
from nbcode.metrics.inception import (
    DEFAULT_FEATURE_EXTRACTOR,
    FEATURE_BATCH,
    FEATURE_EXTRACTOR,
    ChannelsLastInceptionV3,
)
from nbcode.runs.allocator import keep_freed_memory


@torch.no_grad()
def features(extractor: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N, 2048) pool features of (N, 3, 32, 32) uint8 images."""
    return torch.cat([extractor(images[start:start + batch_size])[0]
                      for start in range(0, len(images), batch_size)])


def fid(name: str, weights: str | None, first: torch.Tensor, second: torch.Tensor, batch_size: int) -> float:
    """FID between two uint8 image sets computed by torch-fidelity with the extractor `name`."""
    metrics = torch_fidelity.calculate_metrics(
        input1=UInt8Images(first), input2=UInt8Images(second), fid=True, feature_extractor=name,
        feature_extractor_weights_path=weights, batch_size=batch_size, cuda=torch.cuda.is_available(),
        verbose=False, save_cpu_ram=True, cache=False)
    return metrics["frechet_inception_distance"]


def smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, 32, 32) uint8 random images upsampled from 8x8: structure at several scales,
    unlike white noise."""
    base = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return (torch.nn.functional.interpolate(base, size=32, mode="bilinear") * 255).to(torch.uint8)


def best_times(paths: dict[str, tuple[torch.nn.Module, int]], images: torch.Tensor, rounds: int,
               ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """The best of `rounds` interleaved timings (seconds) of each (network, batch size) in `paths`
    over `images`, and each path's features from its last round."""
    best, outputs = {name: float("inf") for name in paths}, {}
    for _ in range(rounds):
        for name, (network, batch_size) in paths.items():
            start = time.perf_counter()
            outputs[name] = features(network, images, batch_size)
            best[name] = min(best[name], time.perf_counter() - start)
    return best, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=192, help="images per set (two sets for FID)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each extractor, interleaved")
    args = parser.parse_args()
    weights, tag = inception_weights()
    default_batch = DEFAULTS["batch_size"]
    images = smooth_images(2 * args.images)
    first, second = images[:args.images], images[args.images:]
    print(f"{args.images} images of 32x32 per set, {torch.get_num_threads()} torch threads, Inception "
          f"weights: {tag}")
    default_network = FeatureExtractorInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"],
                                                  feature_extractor_weights_path=weights).eval()
    ours_network = ChannelsLastInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"], feature_extractor_weights_path=weights)
    best, outputs = best_times({f"torch-fidelity default, batch {default_batch}": (default_network, default_batch),
                                f"torch-fidelity default, batch {FEATURE_BATCH}": (default_network, FEATURE_BATCH)},
                               first, args.rounds)
    keep_freed_memory()  # as nbcode's fid_kid does (process-wide, hence after the default paths)
    ours_best, ours_outputs = best_times({f"nbcode (NHWC, BN folded), batch {FEATURE_BATCH}":
                                          (ours_network, FEATURE_BATCH)}, first, args.rounds)
    rates = {name: args.images / seconds for name, seconds in (best | ours_best).items()}
    for name, rate in rates.items():
        print(f"{name:<38} {rate:7.1f} images/s (best of {args.rounds} rounds)")
    default, _, ours = (outputs | ours_outputs).values()
    print(f"largest feature difference: {(ours - default).abs().max().item():.2e} "
          f"(largest feature {default.abs().max().item():.2f})")
    fids = {DEFAULT_FEATURE_EXTRACTOR: fid(DEFAULT_FEATURE_EXTRACTOR, weights, first, second, default_batch),
            FEATURE_EXTRACTOR: fid(FEATURE_EXTRACTOR, weights, first, second, FEATURE_BATCH)}
    relative = abs(fids[FEATURE_EXTRACTOR] - fids[DEFAULT_FEATURE_EXTRACTOR]) / fids[DEFAULT_FEATURE_EXTRACTOR]
    print(f"FID {args.images} vs {args.images}: default {fids[DEFAULT_FEATURE_EXTRACTOR]:.4f}, "
          f"nbcode {fids[FEATURE_EXTRACTOR]:.4f}, relative difference {100 * relative:.4f}% (bar: <= 0.5%)")
    default_rate, same_batch_rate, ours_rate = rates.values()
    print(f"nbcode against the default network at the same batch {FEATURE_BATCH} (network and allocator "
          f"setting together): {ours_rate / same_batch_rate:.2f}x")
    print(f"ratio: {ours_rate / default_rate:.2f}x  (nbcode's path against torch-fidelity's default path; "
          f"bar: >= 2x)")

if __name__ == "__main__":
    main()
