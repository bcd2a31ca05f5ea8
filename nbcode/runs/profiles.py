"""Budgets in one place: the `smoke`, `quick` and `paper` profiles, and the device to run on.

Every notebook starts with::

    profile = get_profile()          # from $NBCODE_PROFILE, default "quick"
    device = pick_device()           # cuda, then mps, then cpu
    print(describe(profile, device))

so that the same notebook runs in seconds under the tests (smoke), in minutes on a laptop CPU
(quick) and at the paper's budgets on a GPU (paper).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

PROFILE_VARIABLE = "NBCODE_PROFILE"
DEFAULT_PROFILE = "quick"


@dataclass(frozen=True)
class Profile:
    """The budgets one run of the notebooks is allowed.

    Attributes:
        name: "smoke", "quick" or "paper".
        train_limit: keep at most this many training images (None: the whole training split).
        allow_synthetic: fall back to the synthetic dataset when no real data is on disk.
        classifier_steps: optimiser steps of the ResNet (the paper: 10,000).
        classifier_batch: images per ResNet step (the paper: 512).
        eval_every: evaluate the classifier every this many steps.
        eval_images: images per split scored at each evaluation (None: the whole split); the
            final evaluation also scores the whole validation and test splits.
        comparison_steps: optimiser steps of the recipe, width, ablation and seed comparisons
            of notebook 02 and of notebook 08's DS-ResNet against MobileNetV2 (two seeds each)
            (`comparison_budget`), at the same batch.
        comparison_eval_every: evaluate those runs every this many steps.
        gan_iterations: generator updates of the GAN (the paper: 50,000).
        gan_batch: images per GAN step.
        gan_comparison_iterations: generator updates of the ablation runs of notebook 06, of
            notebook 07's conditional and unconditional twins and of notebook 08's Table 1
            against SLE generators (two seeds each) (`gan_comparison_budget`), at the same batch.
        fid_samples: generated images, and reference images, for FID and KID.
        toy_steps: iterations of the 2-D toy GAN (notebooks 03 and 04).
        toy_seeds: seeds per loss in the toy-GAN comparison.
        timing_repeats: timed runs per measurement; the median is reported.
    """

    name: str
    train_limit: int | None
    allow_synthetic: bool
    classifier_steps: int
    classifier_batch: int
    eval_every: int
    eval_images: int | None
    comparison_steps: int
    comparison_eval_every: int
    gan_iterations: int
    gan_batch: int
    gan_comparison_iterations: int
    fid_samples: int
    toy_steps: int
    toy_seeds: int
    timing_repeats: int

    def __post_init__(self) -> None:
        """Every budget must be a whole number > 0 (None, where allowed, means the whole split)."""
        for name, value in asdict(self).items():
            if name in ("name", "allow_synthetic") or (value is None and name in ("train_limit", "eval_images")):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"profile {self.name!r}: {name} must be a whole number > 0, got {value!r}")


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_limit=2048, allow_synthetic=True,
                     classifier_steps=30, classifier_batch=64, eval_every=10, eval_images=256,
                     comparison_steps=30, comparison_eval_every=10,
                     gan_iterations=20, gan_batch=32, gan_comparison_iterations=20, fid_samples=32,
                     toy_steps=40, toy_seeds=2, timing_repeats=3),
    "quick": Profile("quick", train_limit=None, allow_synthetic=False,
                     classifier_steps=650, classifier_batch=512, eval_every=65, eval_images=1000,
                     comparison_steps=60, comparison_eval_every=12,
                     gan_iterations=6000, gan_batch=64, gan_comparison_iterations=600, fid_samples=500,
                     toy_steps=1500, toy_seeds=3, timing_repeats=20),
    "paper": Profile("paper", train_limit=None, allow_synthetic=False,
                     classifier_steps=10_000, classifier_batch=512, eval_every=500, eval_images=None,
                     comparison_steps=10_000, comparison_eval_every=500,
                     gan_iterations=50_000, gan_batch=64, gan_comparison_iterations=50_000,
                     fid_samples=10_000,
                     toy_steps=3000, toy_seeds=5, timing_repeats=50),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called `name`, or the one named by $NBCODE_PROFILE, or "quick".

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    chosen = name or os.environ.get(PROFILE_VARIABLE) or DEFAULT_PROFILE
    if chosen not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ValueError(f"unknown profile {chosen!r} (from {'argument' if name else PROFILE_VARIABLE}); "
                         f"valid profiles: {valid}")
    return PROFILES[chosen]


def comparison_budget(profile: Profile) -> Profile:
    """`profile` with its classifier budget cut to `comparison_steps` (same batch), evaluated
    every `comparison_eval_every` steps: the budget of notebook 02's comparisons."""
    return replace(profile, classifier_steps=profile.comparison_steps,
                   eval_every=profile.comparison_eval_every)


def gan_comparison_budget(profile: Profile) -> Profile:
    """`profile` with its GAN budget cut to `gan_comparison_iterations` (same batch): the budget of
    notebook 06's ablation runs, notebook 07's conditioning twins and notebook 08's generators."""
    return replace(profile, gan_iterations=profile.gan_comparison_iterations)


def absolute_path_setting(variable: str) -> Path | None:
    """The folder named by the environment variable `variable`, or None when it is unset.

    Raises:
        ValueError: the value is a relative path. It would name one folder for a command line run
            from the repository and another for the notebook kernels (which run in notebooks/), so
            a run trained headless would silently be trained again.
    """
    value = os.environ.get(variable)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError(f"${variable} is the relative path {value!r}: it would mean another folder for the "
                         f"notebooks (run in notebooks/) than for a command line. Set it to an absolute path, "
                         f"e.g. {variable}=\"$PWD/{value}\" ({Path(value).resolve()} from here).")
    return path


def pick_device() -> torch.device:
    """The fastest device present: cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe(profile: Profile, device: torch.device) -> str:
    """One line naming the profile, its main budgets and the device, e.g. "profile quick (set
    NBCODE_PROFILE to change) on cpu, 2 threads: ResNet 650 x 512 steps, ...". Every budget is
    in `profile` (print it for the whole list)."""
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    images = "all" if profile.train_limit is None else f"{profile.train_limit:,}"
    return (f"profile {profile.name} (set {PROFILE_VARIABLE} to change) on {device}{threads}: "
            f"{images} training images; ResNet {profile.classifier_steps:,} x {profile.classifier_batch} steps "
            f"(comparisons {profile.comparison_steps:,}); GAN {profile.gan_iterations:,} x {profile.gan_batch} "
            f"iterations; FID/KID {profile.fid_samples:,} vs {profile.fid_samples:,} images; "
            f"toy GAN {profile.toy_steps:,} steps x {profile.toy_seeds} seeds")
