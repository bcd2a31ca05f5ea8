"""The GAN recipe's levers, side by side in one run: each candidate alone on top of the paper's
recipe, the improved recipe (the kept levers together), and further changes on top of the
improved recipe.

Trains each conditional aw-GAN at the same budget, batch 64 and seed; scores each by FID and KID
of `--samples` samples against as many training images (`score_on_training_images`: the
validation side, never the test split); with `--gan-test`, also by GAN-test accuracy: the share of
`--samples` generated images (as many per class) that the quick profile's improved DS-ResNet
(notebook 2's full-budget run, from the runs cache or trained first) labels as the class asked
for. Prints each score and its ratio to the first lever's. Runs are cached under the runs root
like any other, so a second call only prints. At the quick profile's own budget and sample
count (`--iterations 6000 --samples 500`) the runs are the quick profile's, so the book's cached
paper and improved runs are reused; at any other budget they are a profile of their own, "levers".

    NBCODE_DATASET=cifar10 python benchmarks/gan_levers.py [--iterations 2000] [--samples 500]
        [--only "improved recipe" "improved, DiffAugment"] [--gan-test] [--seed 0]

On the 2-core CPU each run takes about 5 minutes at 2,000 iterations.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from torch import nn

from nbcode.data.datasets import DataMissingError, ensure_downloaded, load_run_split
from nbcode.gan_recipe import GAN_RECIPES, GANSettings, gan_ablations
from nbcode.metrics.evaluation import score_on_training_images
from nbcode.metrics.recognisability import per_class_accuracy, samples_per_class
from nbcode.runs.classifier import input_statistics, load_trained_classifier, train_classifier
from nbcode.runs.gan import load_trained_generator, train_gan
from nbcode.runs.profiles import Profile, get_profile


def levers() -> dict[str, GANSettings]:
    """The paper's recipe, each candidate lever alone on top of it, the improved recipe, its
    ablations (chapter 6's `gan_ablations`: one kept change undone at a time), and changes on top
    of the improved recipe: other learning rates (both at 3/4; a slower generator; the
    discriminator at 4x the generator's rate), both rates decaying linearly to 0, and DiffAugment
    (recolouring and translation, the recipe before the 6,000-iteration screen; with cutout as
    well; translation alone; translation with cutout). Both rates at 4e-4 is "improved without two
    time-scale rates"; both halved is the TTUR lever."""
    paper, improved = GAN_RECIPES["paper"], GAN_RECIPES["improved"]
    augmented = replace(improved, augment=("colour", "translation"))
    return {"paper recipe": paper,
            "D at 2x G's rate (TTUR)": replace(paper, name="lever-ttur", lr_d=2 * paper.lr),
            "DiffAugment": replace(paper, name="lever-diffaugment", augment=augmented.augment),
            "EMA decay 0.995": replace(paper, name="lever-ema995", ema=0.995),
            "linear rate decay": replace(paper, name="lever-decay", lr_decay=True),
            "improved recipe": improved,
            **{f"improved without {change}": settings for change, settings in gan_ablations(improved).items()},
            "improved, G at 3e-4, D at 6e-4": replace(improved, name="lever-improved-rates-3-6", lr=3e-4, lr_d=6e-4),
            "improved, G at 1e-4, D at 4e-4": replace(improved, name="lever-improved-slow-g", lr=1e-4, lr_d=4e-4),
            "improved, D at 4x G's rate": replace(improved, name="lever-improved-ttur4", lr_d=4 * improved.lr),
            "improved, linear rate decay": replace(improved, name="lever-improved-decay", lr_decay=True),
            "improved, DiffAugment": replace(augmented, name="lever-improved-diffaugment"),
            "improved, DiffAugment with cutout": replace(augmented, name="lever-improved-cutout",
                                                         augment=("colour", "translation", "cutout")),
            "improved, DiffAugment translation only": replace(augmented, name="lever-improved-translation",
                                                              augment=("translation",)),
            "improved, DiffAugment translation and cutout": replace(
                augmented, name="lever-improved-translation-cutout", augment=("translation", "cutout"))}


def load_judge() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The quick profile's improved DS-ResNet (trained first if not cached) and the (3,) input
    mean and std it was trained with: the GAN-test judge, loaded once for every lever."""
    record = train_classifier("improved", get_profile("quick"))
    mean, std = input_statistics(record, load_run_split(record["data_source"], get_profile("quick"), "train"))
    return load_trained_classifier(record), mean, std


def gan_test_accuracy(run: dict, samples: int, judge: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> float:
    """GAN-test accuracy in [0, 1] of a conditional GAN run: `samples` // C generated images per
    class, labelled by `judge` (`load_judge`)."""
    generator = load_trained_generator(run)
    images, labels = samples_per_class(generator, max(1, samples // generator.num_classes))
    classifier, mean, std = judge
    return per_class_accuracy(classifier, images, labels, mean, std).nanmean().item()


def lever_profile(iterations: int, samples: int) -> Profile:
    """The quick profile itself at its own GAN budget and sample count, else a "levers" profile."""
    quick = get_profile("quick")
    if (iterations, samples) == (quick.gan_iterations, quick.fid_samples):
        return quick
    return replace(quick, name="levers", gan_iterations=iterations, fid_samples=samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=500, help="generated and training images per score")
    parser.add_argument("--only", nargs="+", choices=list(levers()), help="these levers only, in this order")
    parser.add_argument("--gan-test", action="store_true", help="also score GAN-test accuracy")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every run")
    args = parser.parse_args()
    profile = lever_profile(args.iterations, args.samples)
    try:
        ensure_downloaded(profile, None)
    except DataMissingError as error:
        raise SystemExit(str(error)) from None
    every = levers()
    chosen = {name: every[name] for name in args.only} if args.only else every
    judge = load_judge() if args.gan_test else None
    first, scores = next(iter(chosen)), {}
    for name, settings in chosen.items():
        run = train_gan(settings, profile, seed=args.seed)
        scores[name] = s = score_on_training_images(run, profile)
        accuracy = f"  GAN-test {100 * gan_test_accuracy(run, args.samples, judge):.1f}%" if judge else ""
        print(f"{name:<46} FID {s['fid']:7.2f} ({s['fid'] / scores[first]['fid']:.2f}x {first}'s)  "
              f"KID x1000 {1000 * s['kid_mean']:6.2f} ± {1000 * s['kid_std']:.2f}{accuracy}", flush=True)
    print(f"{args.iterations:,} iterations x {profile.gan_batch} ({profile.name} profile), seed {args.seed}, "
          f"{args.samples:,} samples vs as many training images (floor FID {scores[first]['fid_floor']:.2f})")


if __name__ == "__main__":
    main()
