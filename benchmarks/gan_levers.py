"""The GAN recipe's levers, each alone against the paper's recipe, side by side in one run.

Trains the conditional aw-GAN with the paper's recipe, with each candidate lever of notebook 6
alone on top of it, and with the improved recipe (the kept levers together), all at the same
budget, batch 64 and seed; scores each by FID and KID of `--samples` samples against as many
training images (`score_on_training_images`: the validation side, never the test split); and
prints each score and its ratio to the paper recipe's. Runs are cached under the runs root like
any other, so a second call only prints.

    NBCODE_DATASET=cifar10 python benchmarks/gan_levers.py [--iterations 2000] [--samples 500]

On the 2-core CPU each run takes about 5 minutes at 2,000 iterations.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from nbcode.data.datasets import DataMissingError, ensure_downloaded
from nbcode.gan_recipe import GAN_RECIPES, GANSettings
from nbcode.metrics.evaluation import score_on_training_images
from nbcode.runs.gan import train_gan
from nbcode.runs.profiles import get_profile


def levers() -> dict[str, GANSettings]:
    """The paper's recipe, each candidate lever alone on top of it, and the improved recipe."""
    paper, improved = GAN_RECIPES["paper"], GAN_RECIPES["improved"]
    return {"paper recipe": paper,
            "D at 2x G's rate (TTUR)": replace(paper, name="lever-ttur", lr_d=improved.lr_d),
            "DiffAugment": replace(paper, name="lever-diffaugment", augment=improved.augment),
            "both at 4e-4": replace(paper, name="lever-fast", lr=4e-4, lr_d=4e-4),
            "EMA decay 0.995": replace(paper, name="lever-ema995", ema=0.995),
            "improved recipe": improved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=500, help="generated and training images per score")
    args = parser.parse_args()
    profile = replace(get_profile("quick"), name="levers", gan_iterations=args.iterations, fid_samples=args.samples)
    try:
        ensure_downloaded(profile, None)
    except DataMissingError as error:
        raise SystemExit(str(error)) from None
    scores = {}
    for name, settings in levers().items():
        scores[name] = score_on_training_images(train_gan(settings, profile), profile)
        s = scores[name]
        print(f"{name:<26} FID {s['fid']:7.2f} ({s['fid'] / scores['paper recipe']['fid']:.2f}x the paper "
              f"recipe's)  KID x1000 {1000 * s['kid_mean']:6.2f} ± {1000 * s['kid_std']:.2f}", flush=True)
    print(f"{args.iterations:,} iterations x {profile.gan_batch}, {args.samples:,} samples vs as many training images")


if __name__ == "__main__":
    main()
