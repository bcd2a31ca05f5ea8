"""The computed answers of the book, and the one rule they all follow.

    v = verdict("improved - paper = +3.1 points (spread 1.2)", 3.1, 1.2, "better at this budget")
    v.conclusive, v.difference, v.spread    # True, 3.1, 1.2: the data
    print(v)                                # improved - paper = +3.1 points (spread 1.2): better at this budget.

A difference smaller than twice its spread is not an answer: the sentence then says
"inconclusive at this budget", whatever the sign. Code that needs the outcome reads
`conclusive` and `difference`, never the wording.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nbcode.toy_gan import MODES


@dataclass(frozen=True)
class Verdict:
    """A measured difference, its spread and what it means.

    Attributes:
        measured: the sentence that states the measurement and its budget.
        difference: the measured difference (its unit is in `measured`).
        spread: its uncertainty in the same unit (nan or inf: unknown).
        conclusion: what the difference shows when it is conclusive.
    """

    measured: str
    difference: float
    spread: float
    conclusion: str

    @property
    def conclusive(self) -> bool:
        """True when the spread is known, the difference is not zero (no difference is never an
        answer, however small its spread) and |difference| >= 2 * spread."""
        return math.isfinite(self.spread) and self.difference != 0 and abs(self.difference) >= 2 * self.spread

    @property
    def text(self) -> str:
        """`measured`, then ": <conclusion>." or ": inconclusive at this budget."."""
        return f"{self.measured}: {self.conclusion if self.conclusive else 'inconclusive at this budget'}."

    def __str__(self) -> str:
        return self.text


def outcome(result: Verdict, lower_is_better: bool) -> str:
    """One word for the model whose value comes first in a Verdict's difference (difference =
    that model's value - the other's): "better", "worse", or "inconclusive" when the difference
    is under twice its spread. `lower_is_better`: for metrics such as KID, where a negative
    difference means the model is the better one."""
    if not result.conclusive:
        return "inconclusive"
    return "better" if (result.difference < 0) == lower_is_better else "worse"


def verdict(measured: str, difference: float, spread: float, conclusion: str) -> Verdict:
    """The Verdict of a difference and its spread (see `Verdict.conclusive` for the rule)."""
    return Verdict(measured, difference, spread, conclusion)


def validation_and_variance(record: dict) -> tuple[float, float]:
    """A classifier run's validation accuracy (mean over its last evaluations, in [0, 1]) and the
    variance of that value: the std over those evaluations, squared, plus the sampling variance of
    an accuracy p measured on n validation images, p (1 - p) / n."""
    final, n = record["final"]["validation"], record["eval_images"]["validation"]
    return final["mean"], final["std"] ** 2 + final["mean"] * (1 - final["mean"]) / n


def recipe_verdict(baseline: dict, other: dict) -> Verdict:
    """One sentence: other - baseline validation accuracy in points, with its spread, and the verdict.
    Each run is named by its recipe and width, and by its network and seed where the two differ.

    The spread combines, for both runs, the std over the last evaluations (the last quarter, at
    least one; with a single one that term is 0) and the sampling error of an accuracy p measured
    on n validation images, sqrt(p (1 - p) / n). A difference under
    twice the spread is called "inconclusive at this budget".
    """
    (a, var_a), (b, var_b) = validation_and_variance(baseline), validation_and_variance(other)
    difference, spread = 100 * (b - a), 100 * (var_a + var_b) ** 0.5
    def label(record: dict) -> str:
        network = f"{record['network']} " if baseline["network"] != other["network"] else ""
        seed = f" seed {record['seed']}" if baseline["seed"] != other["seed"] else ""
        return f"{network}{record['recipe']['name']} x{record['width_factor']}{seed}"

    name, evals = f"{label(other)} - {label(baseline)}", other["final"]["validation"]["evals"]
    last = "the last evaluation" if evals == 1 else f"the last {evals} evaluations"
    measured = (f"{name} = {difference:+.1f} points on validation (spread {spread:.1f}: {last} and "
                f"{other['eval_images']['validation']:,} images; {other['dataset']}, {other['profile']} profile, "
                f"{other['steps']:,} steps x {other['batch']})")
    return verdict(measured, difference, spread, f"{'better' if difference > 0 else 'worse'} at this budget")


def seed_spread(baseline: list[tuple[float, float]], other: list[tuple[float, float]]) -> tuple[float, float]:
    """mean(other) - mean(baseline) and its spread, from runs at several seeds per arm.

    Each run is (value, sampling variance of that value). The variance of one run is the seed
    term, the variance of the values between seeds pooled over both arms (as a two-sample t-test
    pools it), plus the arm's mean sampling variance; the spread is that of the difference of the
    two arm means, sqrt(V_b / n_b + V_o / n_o). The sampling term is counted again on top of the
    between-seed variance (which already holds it), so that two seeds that agree by chance do not
    shrink the spread below the sampling one.

    Raises:
        ValueError: neither arm has two runs, so the seed term cannot be measured.
    """
    if max(len(baseline), len(other)) < 2 or min(len(baseline), len(other)) < 1:
        raise ValueError(f"the seed term needs two or more seeds in an arm (got {len(baseline)} and "
                         f"{len(other)} runs); for one run per arm use the single-run verdicts")
    arms = [torch.tensor(arm, dtype=torch.float64) for arm in (baseline, other)]
    squares = sum(((arm[:, 0] - arm[:, 0].mean()) ** 2).sum() for arm in arms)
    seed_variance = (squares / (len(baseline) + len(other) - 2)).item()
    difference = (arms[1][:, 0].mean() - arms[0][:, 0].mean()).item()
    variance = sum((seed_variance + arm[:, 1].mean().item()) / len(arm) for arm in arms)
    return difference, variance ** 0.5


def seeded_recipe_verdict(baseline: list[dict], other: list[dict], names: tuple[str, str]) -> Verdict:
    """One sentence: validation accuracy of the `other` classifier runs minus the `baseline` ones
    (runs at several seeds each), in points, with a spread that includes the seed term
    (`seed_spread`; each run's sampling variance as in `recipe_verdict`).

    Args:
        names: what the two arms are, for the sentence, e.g. ("the DS-ResNet", "the MobileNetV2").
    """
    def run(record: dict) -> tuple[float, float]:
        accuracy, variance = validation_and_variance(record)
        return 100 * accuracy, 100 ** 2 * variance  # in points

    difference, spread = seed_spread([run(r) for r in baseline], [run(r) for r in other])
    first = other[0]
    measured = (f"{names[1]} - {names[0]} = {difference:+.1f} points on validation (spread {spread:.1f}, seed term "
                f"included: seeds {sorted(r['seed'] for r in other)} vs {sorted(r['seed'] for r in baseline)}; "
                f"{first['dataset']}, {first['profile']} profile, {first['steps']:,} steps x {first['batch']})")
    return verdict(measured, difference, spread,
                   f"{names[1] if difference > 0 else names[0]} is better at this budget")


def seeded_gan_verdict(first: list[dict], second: list[dict], names: tuple[str, str]) -> Verdict:
    """One sentence comparing two arms of `fid_kid` results (one per seed) by mean KID, first minus
    second (lower is better), with a spread that includes the seed term (`seed_spread`; each
    result's sampling variance is its KID std over subsets, squared, as in `gan_verdict`)."""
    def run(result: dict) -> tuple[float, float]:
        return result["kid_mean"], result["kid_std"] ** 2

    difference, spread = seed_spread([run(r) for r in second], [run(r) for r in first])
    fid = [sum(r["fid"] for r in arm) / len(arm) for arm in (first, second)]
    measured = (f"{names[0]} - {names[1]}: KID x1000 {1000 * difference:+.2f} (spread {1000 * spread:.2f}, seed "
                f"term included: {len(first)} vs {len(second)} seeds), mean FID {fid[0]:.2f} vs {fid[1]:.2f} at "
                f"{first[0]['n_generated']:,} vs {first[0]['n_reference']:,} images")
    return verdict(measured, difference, spread, f"{names[0] if difference < 0 else names[1]} is better at this budget")


def gan_verdict(first: dict, second: dict,
                names: tuple[str, str] = ("the conditional GAN", "the unconditional GAN")) -> Verdict:
    """One sentence comparing two `fid_kid` results by KID, first minus second (lower is better).

    The spread is the two KIDs' standard deviations over subsets, combined (conservative: larger
    than the standard error of either mean). A difference under twice the spread is called
    "inconclusive at this budget".

    Args:
        names: what the two results are of, for the sentence, e.g. ("the improved recipe", "the paper recipe").
    """
    difference = first["kid_mean"] - second["kid_mean"]
    spread = (first["kid_std"] ** 2 + second["kid_std"] ** 2) ** 0.5
    measured = (f"{names[0]} - {names[1]}: KID x1000 {1000 * difference:+.2f} (spread {1000 * spread:.2f}), "
                f"FID {first['fid']:.2f} vs {second['fid']:.2f} at {first['n_generated']:,} "
                f"vs {first['n_reference']:,} images")
    return verdict(measured, difference, spread, f"{names[0] if difference < 0 else names[1]} is better at this budget")


def copying_verdict(record: dict) -> Verdict:
    """One sentence comparing the samples' LPIPS to their nearest training images with real
    images' (an `lpips_record`): a difference under two standard errors is called inconclusive."""
    difference = record["lpips_mean"] - record["lpips_real_mean"]
    error = (record["lpips_std"] ** 2 / record["lpips_n"] + record["lpips_real_std"] ** 2
             / record["lpips_real_n"]) ** 0.5
    measured = (f"samples - real test images = {difference:+.3f} LPIPS (standard error {error:.3f}, "
                f"{record['lpips_n']:,} vs {record['lpips_real_n']:,} images, nearest of "
                f"{record['lpips_pool']:,} training images by {record['lpips_neighbour']})")
    if difference < 0:
        return verdict(measured, difference, error,
                       "the samples lie closer to training images than real images do, a sign of copying")
    return verdict(measured, difference, error, "the samples lie further from the training images than real "
                   "images do, so no sign of copying (poor samples score high too: read this beside FID)")


def recognisability_verdict(generated: torch.Tensor, real: torch.Tensor, n_generated: int, budget: str) -> Verdict:
    """One sentence: the mean GAN-test accuracy against chance (1 / C) and against real test images.

    Args:
        generated, real: (C,) per-class accuracies from `per_class_accuracy`.
        n_generated: generated images scored (the spread is the binomial one, sqrt(p (1 - p) / n)).
        budget: dataset, profile and iterations, for the sentence.
    """
    chance = 1 / len(generated)
    p, ceiling = generated.nanmean().item(), real.nanmean().item()
    spread = (p * (1 - p) / n_generated) ** 0.5
    measured = (f"the classifier names the requested class for {100 * p:.1f}% of {n_generated:,} generated "
                f"images (spread {100 * spread:.1f}), against {100 * chance:.1f}% by chance and "
                f"{100 * ceiling:.1f}% on real test images ({budget})")
    conclusion = "the samples carry their classes" if p > chance else "the samples carry no class"
    return verdict(measured, 100 * (p - chance), 100 * spread, conclusion)


def coverage_verdict(hinge: list[int], aw: list[int], steps: int) -> Verdict:
    """One sentence comparing modes covered per seed (same seeds) by the hinge and the aw loss.

    The spread is the standard error of the mean per-seed difference; a difference under twice
    the spread (or any difference with fewer than two seeds) is "inconclusive at this budget".
    """
    differences = torch.tensor(aw, dtype=torch.float64) - torch.tensor(hinge, dtype=torch.float64)
    mean = differences.mean().item()
    error = differences.std().item() / math.sqrt(len(differences)) if len(differences) > 1 else math.inf
    measured = (f"aw vs hinge on the toy task: modes covered {sum(aw) / len(aw):.1f} vs {sum(hinge) / len(hinge):.1f} "
                f"of {MODES} (mean over {len(aw)} seeds, {steps} iterations; aw - hinge = {mean:+.1f}, "
                f"standard error {error:.1f})")
    return verdict(measured, mean, error, f"{'aw' if mean > 0 else 'hinge'} covers more modes at this budget")
