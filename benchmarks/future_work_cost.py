"""The cost of the paper's "future work" against its own models, measured side by side in one run:

- classifier: the DS-ResNet (nbcode.resnet) against the MobileNetV2 of inverted residuals
  (nbcode.mobilenet), both for 100 classes: parameters, multiply-adds per image (FlopCounterMode,
  as chapter 1 counts them) and seconds per training step of the improved recipe;
- GAN: Table 1's generator (nbcode.gan) against the SLE + depthwise-separable one
  (nbcode.sle_gan), each with Table 1's discriminator: parameters of G + D, multiply-adds of one
  generated image and seconds per aw-GAN iteration of the improved recipe.

    python benchmarks/future_work_cost.py [--rounds 5] [--batch 512] [--gan-batch 64]

The two models of a pair are timed in alternating rounds (median of each), in fp32 on the CPU, so
that drift of the machine hits both alike; the last column is new / paper.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from nbcode.classifier_recipe import RECIPES, classifier_step, make_optimizer
from nbcode.cost import count_parameters, counted_macs
from nbcode.gan import LATENT, Discriminator, Generator
from nbcode.gan_recipe import GAN_RECIPES, build_gan, gan_iteration
from nbcode.mobilenet import MobileNetV2Small
from nbcode.resnet import DSResNet
from nbcode.sle_gan import SLEGenerator


def classifier_timer(model: torch.nn.Module, batch: int):
    """A function running one improved-recipe training step of `model` on a fixed random batch."""
    recipe = RECIPES["improved"]
    optimizer, schedule = make_optimizer(model, recipe, steps=10_000)
    images, labels = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 100, (batch,))
    mean, std, rng = torch.full((3,), 0.5), torch.full((3,), 0.25), torch.Generator().manual_seed(0)
    return lambda: classifier_step(model, optimizer, schedule, images, labels, mean, std, recipe, rng)


def gan_timer(generator: str, batch: int):
    """A function running one aw-GAN iteration (improved recipe) of the `generator` ("table1" or
    "sle") against Table 1's D, built as the runs build them (build_gan)."""
    settings = GAN_RECIPES["improved"]
    g, d, g_opt, d_opt = build_gan(100, settings.lr, lr_d=settings.lr_d, generator=generator)
    real = (torch.rand(batch, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 100, (batch,))
    rng = torch.Generator().manual_seed(0)
    return lambda: gan_iteration(g, d, g_opt, d_opt, real, labels, settings.loss, rng, augment=settings.augment)


def alternating_medians(first, second, rounds: int) -> tuple[float, float]:
    """Median seconds of `first()` and `second()`, timed in alternating rounds after one warm-up each."""
    times: tuple[list[float], list[float]] = ([], [])
    for fn in (first, second):
        fn()
    for _ in range(rounds):
        for fn, kept in zip((first, second), times):
            start = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--gan-batch", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{'pair':<36}{'paper':>14}{'future work':>14}{'ratio':>8}")
    paper, new = DSResNet(), MobileNetV2Small()
    rows = [("classifier parameters", count_parameters(paper), count_parameters(new)),
            ("classifier multiply-adds / image", counted_macs(paper.eval(), (1, 3, 32, 32)),
             counted_macs(new.eval(), (1, 3, 32, 32)))]
    step = alternating_medians(classifier_timer(paper.train(), args.batch), classifier_timer(new.train(), args.batch),
                               args.rounds)
    rows.append((f"classifier s / step (batch {args.batch})", *step))
    g_paper, g_new = Generator(100), SLEGenerator(100)
    d_params = count_parameters(Discriminator(100))
    rows += [("GAN parameters (G + D)", count_parameters(g_paper) + d_params, count_parameters(g_new) + d_params)]
    macs = [counted_macs(lambda z, g=g: g(z, torch.zeros(1, dtype=torch.long)), (1, LATENT))
            for g in (g_paper.eval(), g_new.eval())]
    rows.append(("generator multiply-adds / image", *macs))
    iteration = alternating_medians(gan_timer("table1", args.gan_batch), gan_timer("sle", args.gan_batch), args.rounds)
    rows.append((f"GAN s / iteration (batch {args.gan_batch})", *iteration))
    for name, a, b in rows:
        cells = (f"{a:>14,}", f"{b:>14,}") if isinstance(a, int) else (f"{a:>14.3f}", f"{b:>14.3f}")
        print(f"{name:<36}{cells[0]}{cells[1]}{b / a:>7.2f}x")


if __name__ == "__main__":
    main()
