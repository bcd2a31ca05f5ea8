"""The evaluation of a trained GAN, cached: FID and KID against the test split beside the
real-vs-real floor at the same n, and LPIPS to the nearest training images beside real images'.

    scores = evaluate_gan(record, get_profile("quick"))   # computed once, then read back

`python -m nbcode.runs.reproduce` and notebook 07 both call it, so a GAN is scored once per
sample count and the book's pages read the same evaluation record.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nbcode.data.datasets import load_run_split
from nbcode.metrics.fid import fid_kid, real_floor, sample_images
from nbcode.metrics.nearest import lpips_record, lpips_to_nearest, real_lpips
from nbcode.runs.cache import (
    CorruptRunFileError,
    check_record,
    git_commit,
    read_record,
    record_digest,
    runs_root,
    write_json,
)
from nbcode.runs.gan import load_trained_generator
from nbcode.runs.profiles import Profile


def evaluate_gan(record: dict, profile: Profile, runs_dir: str | Path | None = None,
                 progress: bool = True, checkpoint: Path | None = None) -> dict:
    """FID/KID and LPIPS of a GAN run at `profile.fid_samples`, or the evaluation record made earlier.

    The samples are scored against the data the run trained on (its record's `data_source`;
    nbcode.data.datasets.DataChangedError when the data root now gives other data). An earlier
    evaluation is read back only when it was made of this very run record (its digest) at this
    sample count. With `progress`, a bar names each stage as it runs (samples, FID/KID, the
    real-vs-real floor, LPIPS) and the nearest-neighbour search shows its own bar. `checkpoint`:
    the run's generator file when its run folder is not here (an export's; see reproduce).
    """
    path = runs_root(runs_dir) / "evaluation" / f"{record['run']}.json"
    earlier = _earlier_evaluation(path, record, profile.fid_samples)
    if earlier is not None:
        return earlier
    stages = tqdm(total=4, desc=f"evaluating {record['run']}", disable=not progress)
    test = load_run_split(record["data_source"], profile, "test").subset(profile.fid_samples)
    train = load_run_split(record["data_source"], profile, "train")
    stages.set_postfix_str(f"sampling {profile.fid_samples:,} images")
    generator = load_trained_generator(record, runs_dir, checkpoint=checkpoint)
    samples = sample_images(generator, profile.fid_samples, seed=0)
    stages.update()
    stages.set_postfix_str(f"FID and KID, {len(samples):,} vs {len(test):,} images")
    scores = fid_kid(None, test, 0, generated=samples, runs_dir=runs_dir)
    stages.update()
    stages.set_postfix_str("the real-vs-real floor")
    floor = real_floor(train, test, runs_dir)
    scores |= {"fid_floor": floor["fid"], "kid_floor": floor["kid_mean"]}
    stages.update()
    stages.set_postfix_str(f"LPIPS to the nearest of {len(train):,} training images")
    scores |= lpips_record(lpips_to_nearest(samples, train.images, progress=progress),
                           real_lpips(test, train, runs_dir, progress), len(train))
    stages.update()
    stages.close()
    return save_evaluation(record, scores, runs_dir)


def score_on_training_images(record: dict, profile: Profile, runs_dir: str | Path | None = None) -> dict:
    """FID and KID of `profile.fid_samples` samples of a GAN run against as many of the training
    images it learned from (seeded subset), beside the floor at that n (another seeded subset of
    training images against the same ones; the two subsets may share a few images, which lowers
    the floor slightly), or the record made earlier of this run record.

    This is the validation side of the GAN chapters: recipes and their ablations are chosen on
    it, never on the test split, which `evaluate_gan` keeps for the final comparison.
    """
    path = runs_root(runs_dir) / "evaluation" / f"{record['run']}.training.json"
    earlier = _earlier_evaluation(path, record, profile.fid_samples)
    if earlier is not None:
        return earlier
    train = load_run_split(record["data_source"], profile, "train")
    reference = train.subset(profile.fid_samples, seed=2)
    scores = fid_kid(load_trained_generator(record, runs_dir), reference, profile.fid_samples, runs_dir=runs_dir)
    floor = real_floor(train, reference, runs_dir)
    scores |= {"fid_floor": floor["fid"], "kid_floor": floor["kid_mean"]}
    result = {"kind": "training-fid", "run": record["run"], "run_digest": record_digest(record),
              "recipe": record["settings"]["name"], "generator": record["settings"]["generator"],
              "conditional": record["settings"]["conditional"], "loss": record["settings"]["loss"],
              "dataset": record["dataset"], "profile": record["profile"], "iterations": record["iterations"],
              "seed": record["seed"], "commit": git_commit(), **scores}
    write_json(path, result)
    return result


def _earlier_evaluation(path: Path, run: dict, n_generated: int) -> dict | None:
    """The evaluation record at `path` when it was made of the run record `run` at `n_generated`
    samples and passes its checks, else None (then it is made again; a damaged one with a warning)."""
    earlier = read_record(path)
    if earlier is None or earlier.get("run_digest") != record_digest(run) or earlier.get("n_generated") != n_generated:
        return None
    try:
        check_record(earlier, path)
    except CorruptRunFileError as error:
        warnings.warn(f"{error} Evaluating the run again.", stacklevel=3)
        return None
    return earlier


def save_recognisability(run: dict, generated: torch.Tensor, real: torch.Tensor, n_generated: int,
                         runs_dir: str | Path | None = None) -> dict:
    """Write the GAN-test result of a conditional GAN run record for the book's report card.

    Args:
        generated, real: (C,) per-class accuracies of the classifier on generated and on real test
            images (nbcode.metrics.recognisability.per_class_accuracy).
        n_generated: generated images scored.
    Returns:
        The record: mean accuracies in [0, 1], chance (1 / C), its binomial spread, the budget.
    """
    accuracy = generated.nanmean().item()
    record = {"kind": "gan-test", "run": run["run"], "run_digest": record_digest(run),
              "recipe": run["settings"]["name"], "generator": run["settings"]["generator"], "dataset": run["dataset"],
              "profile": run["profile"], "iterations": run["iterations"], "n_generated": n_generated,
              "accuracy": accuracy, "spread": (accuracy * (1 - accuracy) / n_generated) ** 0.5,
              "chance": 1 / len(generated), "real_accuracy": real.nanmean().item(), "commit": git_commit()}
    write_json(runs_root(runs_dir) / "evaluation" / f"{run['run']}.gan-test.json", record)
    return record


def save_evaluation(run: dict, scores: dict, runs_dir: str | Path | None = None) -> dict:
    """Write the `scores` of a GAN run record (FID/KID, LPIPS) as an evaluation record for the book,
    bound to that run record by its digest."""
    record = {"kind": "evaluation", "run": run["run"], "run_digest": record_digest(run),
              "conditional": run["settings"]["conditional"], "recipe": run["settings"]["name"],
              "generator": run["settings"]["generator"], "loss": run["settings"]["loss"], "seed": run["seed"],
              "dataset": run["dataset"], "data_source": run["data_source"], "profile": run["profile"],
              "iterations": run["iterations"],
              "device": run["device"], "commit": git_commit(), **scores}
    write_json(runs_root(runs_dir) / "evaluation" / f"{run['run']}.json", record)
    return record
