"""FID Inception features: nbcode's extractor against torch-fidelity's default path.

Both are torch-fidelity's `inception-v3-compat` network with the same weights (torch-fidelity's
download when present, else the offline fid-helper conversion); nbcode only stores its weights
channels_last, with each batch norm folded into its convolution
(`nbcode.inception.ChannelsLastInceptionV3`). On the same uint8 images the script
times the features of each (interleaved rounds, best round of each), then computes FID of two
image sets through `torch_fidelity.calculate_metrics` with each extractor.

    python benchmarks/fid_features.py [--images 200] [--batch-size 100] [--rounds 3]

Prints images/s of both, the largest feature difference, both FIDs and their relative
difference (bar: <= 0.5%), and last the speed ratio (bar: >= 2x).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from nbcode.fid import UInt8Images, inception_weights
from nbcode.inception import DEFAULT_FEATURE_EXTRACTOR, FEATURE_EXTRACTOR, ChannelsLastInceptionV3


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="images per set (two sets for FID)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each extractor, interleaved")
    args = parser.parse_args()
    weights, tag = inception_weights()
    generator = torch.Generator().manual_seed(0)
    # two sets of smooth random images: structure at several scales, unlike white noise
    base = torch.rand(2 * args.images, 3, 8, 8, generator=generator)
    images = (torch.nn.functional.interpolate(base, size=32, mode="bilinear") * 255).to(torch.uint8)
    first, second = images[:args.images], images[args.images:]
    print(f"{args.images} images of 32x32 per set, batch {args.batch_size}, {torch.get_num_threads()} torch "
          f"threads, Inception weights: {tag}")

    extractors = {"torch-fidelity default": FeatureExtractorInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"],
                                                                        feature_extractor_weights_path=weights),
                  "nbcode (NHWC, BN folded)": ChannelsLastInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"],
                                                                  feature_extractor_weights_path=weights)}
    best = {name: float("inf") for name in extractors}
    outputs = {}
    for _ in range(args.rounds):
        for name, extractor in extractors.items():
            start = time.perf_counter()
            outputs[name] = features(extractor.eval(), first, args.batch_size)
            best[name] = min(best[name], time.perf_counter() - start)
    default, ours = outputs.values()
    rates = {name: args.images / seconds for name, seconds in best.items()}
    for name, rate in rates.items():
        print(f"{name:<24} {rate:7.1f} images/s (best of {args.rounds} rounds)")
    print(f"largest feature difference: {(ours - default).abs().max().item():.2e} "
          f"(largest feature {default.abs().max().item():.2f})")
    fids = {name: fid(name, weights, first, second, args.batch_size)
            for name in (DEFAULT_FEATURE_EXTRACTOR, FEATURE_EXTRACTOR)}
    relative = abs(fids[FEATURE_EXTRACTOR] - fids[DEFAULT_FEATURE_EXTRACTOR]) / fids[DEFAULT_FEATURE_EXTRACTOR]
    print(f"FID {args.images} vs {args.images}: default {fids[DEFAULT_FEATURE_EXTRACTOR]:.4f}, "
          f"nbcode {fids[FEATURE_EXTRACTOR]:.4f}, relative difference {100 * relative:.4f}% "
          f"(bar: <= 0.5%)")
    print(f"ratio: {rates['nbcode (NHWC, BN folded)'] / rates['torch-fidelity default']:.2f}x  (bar: >= 2x)")


if __name__ == "__main__":
    main()
