"""Training runs of the DS-ResNet: cached, resumable, recorded; evaluation splits; a command line.

    record = train_classifier("paper", get_profile("quick"))   # trains, or loads the cached result
    record["final"]["test"]             # over the last evaluations: {"mean": ..., "std": ..., "evals": ...}
    record["full_splits"]["test"]       # the final weights on the whole test split

Headless, e.g. on a GPU box (the notebook then finds the cached run):

    python -m nbcode.runs.classifier --profile paper --recipe improved [--network mobilenetv2]

The recipe and its training step are the paper's layer (nbcode.classifier_recipe); this module
runs them, on the paper's DS-ResNet or on chapter 8's MobileNetV2 (`NETWORKS`). Every run lives in
its own folder under the runs root ($NBCODE_RUNS, default ~/.cache/nbcode/runs), named by what
produced it: network, recipe, width, dataset, profile, steps x batch
and seed, then a short hash of every setting and of the data actually loaded (`run_name`). The
folder's bookkeeping (lock, checkpoint at every evaluation and after every ten minutes of
training, record) is nbcode.runs.scaffold.
Batches and augmentation are drawn from (seed, step) alone, so a run resumed from a checkpoint
ends with exactly the weights of an uninterrupted one.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from nbcode.classifier_recipe import RECIPES, Recipe, classifier_step, evaluate, get_recipe, make_optimizer
from nbcode.cost import count_parameters
from nbcode.data.datasets import (
    DataMissingError,
    ImageData,
    batch_indices,
    channel_stats,
    data_source,
    dataset_name,
    ensure_downloaded,
    load_for_profile,
)
from nbcode.mobilenet import MobileNetV2Small
from nbcode.resnet import DSResNet
from nbcode.runs.allocator import keep_freed_memory
from nbcode.runs.cache import git_commit, load_checkpoint, runs_root, settings_hash
from nbcode.runs.precision import precision_name, training_dtype
from nbcode.runs.profiles import PROFILES, Profile, get_profile, pick_device
from nbcode.runs.scaffold import CHECKPOINT, TrainingRun, train_or_load

VALIDATION_FRACTION = 0.1  # of the training split, held out for every choice we make
NETWORKS = ("dsresnet", "mobilenetv2")  # the paper's DS-ResNet; chapter 8's inverted residuals


def build_classifier(network: str, num_classes: int, width_factor: int = 1) -> nn.Module:
    """A fresh classifier: "dsresnet" (the paper's, 94,372 parameters at width_factor 1 and 100
    classes, 334,052 at 2) or "mobilenetv2" (MobileNetV2Small, 93,180; one width only).

    Raises:
        ValueError: an unknown network, or a width factor the network does not have.
    """
    if network == "dsresnet":
        return DSResNet(num_classes=num_classes, width_factor=width_factor)
    if network not in NETWORKS:
        raise ValueError(f"unknown classifier network {network!r}; valid: {', '.join(NETWORKS)}")
    if width_factor != 1:
        raise ValueError(f"the {network} classifier has one width (the paper's 94k budget); got width_factor "
                         f"{width_factor}")
    return MobileNetV2Small(num_classes)


def without_flip_tta(record: dict) -> dict:
    """The record of a flip-TTA run as if scored without TTA: same weights, so no second run.

    Each evaluation of a recipe with flip TTA also keeps the plain accuracy ({split}_no_tta);
    this copy puts those in place of the TTA ones and recomputes "final" and "full_splits".
    """
    if not record["recipe"]["flip_tta"]:
        raise ValueError(f"{record['run']} was scored without flip TTA already")
    splits = ("train", "validation", "test")
    history = [{**h, **{split: h[f"{split}_no_tta"] for split in splits}} for h in record["history"]]
    plain = {**record, "history": history,
             "recipe": {**record["recipe"], "name": f"{record['recipe']['name']}-no-tta", "flip_tta": False}}
    if "final" in record:
        plain["final"] = final_accuracy(history)
        full = record["full_splits"]
        plain["full_splits"] = {**full, **{split: full[f"{split}_no_tta"] for split in ("validation", "test")}}
    return plain


def split_validation(train: ImageData, fraction: float = VALIDATION_FRACTION,
                     seed: int = 0) -> tuple[ImageData, ImageData]:
    """Hold out a random `fraction` of the training split as a validation set (fixed by `seed`)."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    held = int(len(train) * fraction)
    return train.take(order[held:]), train.take(order[:held], "validation")


def input_statistics(record: dict, full_train: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel mean and std, (3,) each in [0, 1] units, that the classifier run of `record`
    normalised its inputs with: those of its training part (`full_train`, the training split the
    run was given, less the validation images held out with the run's seed), recomputed."""
    return channel_stats(split_validation(full_train, seed=record["seed"])[0].images)


def scores(model: nn.Module, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], mean: torch.Tensor,
           std: torch.Tensor, flip_tta: bool, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """The accuracy of each split as the recipe reads it ({split: accuracy}), and, for a recipe
    with flip TTA, the same without it ({split}_no_tta): the ablation of TTA needs no second run.
    Forward passes in `dtype` (see `evaluate`)."""
    result = {}
    for name, (images, labels) in splits.items():
        accuracy = evaluate(model, images, labels, mean, std, flip_tta, dtype)
        result[name] = accuracy["flip_tta" if flip_tta else "plain"]
        if flip_tta:
            result[f"{name}_no_tta"] = accuracy["plain"]
    return result


def run_name(recipe: Recipe, width_factor: int, train: ImageData, test: ImageData, profile: Profile,
             seed: int, dtype: torch.dtype, network: str = "dsresnet") -> str:
    """The folder name of a run: a readable part, then a hash of everything that determines its
    result (the network, every setting of the recipe, the width, the data actually loaded, the
    budgets, the seed, the training precision)."""
    budgets = ("train_limit", "classifier_steps", "classifier_batch", "eval_every", "eval_images")
    key = {"network": network, "recipe": asdict(recipe), "width_factor": width_factor, "seed": seed,
           "precision": precision_name(dtype), "budgets": {name: getattr(profile, name) for name in budgets},
           "data": [[d.name, d.split, d.verified, len(d), d.fingerprint()] for d in (train, test)]}
    return (f"{network}-x{width_factor}-{recipe.name}-{train.name}-{profile.name}-"
            f"{profile.classifier_steps}x{profile.classifier_batch}-seed{seed}-{precision_name(dtype)}-"
            f"{settings_hash(key)}")


def final_accuracy(history: list[dict]) -> dict:
    """Mean and std of each accuracy over the last quarter of the evaluations (at least one), as the
    paper reports its accuracy: {"train": {"mean", "std", "evals"}, "validation": ..., "test": ...}."""
    last = history[-max(1, len(history) // 4):]
    summary = {}
    for split in ("train", "validation", "test"):
        values = torch.tensor([h[split] for h in last], dtype=torch.float64)
        std = values.std().item() if len(values) > 1 else 0.0
        summary[split] = {"mean": values.mean().item(), "std": std, "evals": len(values)}
    return summary


def train_classifier(recipe_name: str | Recipe, profile: Profile, *, width_factor: int = 1,
                     network: str = "dsresnet", dataset: str | None = None, seed: int = 0,
                     runs_dir: str | Path | None = None, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train a classifier with a recipe at a profile's budget, or return the cached record.

    Args:
        recipe_name: a key of RECIPES, or a Recipe (e.g. one of `ablations()`).
        profile: the budgets (classifier_steps, classifier_batch, eval_every, train_limit).
        width_factor: 1 for the paper's 94,372-parameter model, 2 for its 334,052-parameter one.
        network: "dsresnet" (the paper's) or "mobilenetv2" (chapter 8; width_factor 1 only).
        dataset: "cifar100", "cifar10" or "synthetic" (default: $NBCODE_DATASET or cifar100).
        stop_after: stop (with a checkpoint) once this step is reached; a later call resumes.
    Returns:
        The run record, also written to metrics.json: settings, history of evaluations
        ({step, lr, train_loss, train, validation, test} accuracies in [0, 1]) and, when the
        run is complete, "final": mean +- std of each accuracy over the last evaluations.
    """
    keep_freed_memory()  # batch-512 activations of 32-64 MiB, reused instead of page-faulted
    build_classifier(network, 10, width_factor)  # an unknown network or width fails before any data is read
    recipe = recipe_name if isinstance(recipe_name, Recipe) else get_recipe(recipe_name)
    full_train = load_for_profile(profile, "train", dataset_name(dataset))
    test = load_for_profile(profile, "test", dataset_name(dataset))
    dtype = training_dtype(pick_device())
    name = run_name(recipe, width_factor, full_train, test, profile, seed, dtype, network)
    folder = runs_root(runs_dir) / "classifier" / name
    source = data_source(full_train, dataset_name(dataset))
    return train_or_load(folder, lambda record: record.get("step") == profile.classifier_steps and "final" in record,
                         lambda: _train(recipe, profile, (network, width_factor), (full_train, test, source), seed,
                                        dtype, folder, progress, stop_after))


def _evaluation_splits(train: tuple[torch.Tensor, torch.Tensor], validation: ImageData, test: ImageData,
                       n: int | None, device: torch.device) -> tuple[dict, dict]:
    """The splits scored at every evaluation (the first `n` images of each; training images
    without augmentation) and the whole validation and test splits scored at the end:
    {name: (images (N, 3, 32, 32) uint8, labels (N,))} each, on `device`.

    Args:
        train: the training images and labels, already on `device`.
    """
    full = {name: (split.images.to(device), split.labels.to(device))
            for name, split in (("validation", validation), ("test", test))}
    n = n or len(test)  # the same number of images from each split
    scored = {name: (images[:n], labels[:n]) for name, (images, labels) in (("train", train), *full.items())}
    return scored, full


def _classifier_record(folder: Path, model: nn.Module, network: tuple[str, int], recipe: Recipe, profile: Profile,
                       seed: int, dtype: torch.dtype, splits: tuple[ImageData, ImageData, ImageData, dict],
                       scored: dict) -> dict:
    """The settings part of a classifier run record (the loop adds history and results);
    `network` is (its name, the width factor); `splits` are the training part, validation and
    test splits, and the `data_source` entry."""
    train, validation, test, source = splits
    return {"kind": "classifier", "run": folder.name, "network": network[0], "architecture": _architecture(model),
            "width_factor": network[1], "num_classes": len(train.classes),
            "parameters": count_parameters(model), "recipe": asdict(recipe), "profile": profile.name,
            "steps": profile.classifier_steps, "batch": profile.classifier_batch, "seed": seed,
            "precision": precision_name(dtype), "dataset": train.name, "data_source": source,
            "data": {"train": train.describe(), "validation": validation.describe(), "test": test.describe()},
            "eval_images": {name: len(labels) for name, (_, labels) in scored.items()},
            "device": str(pick_device()), "commit": git_commit(), "history": []}


def _architecture(model: nn.Module) -> str:
    """The name a checkpoint of `model` carries: its class, widths and number of classes."""
    if isinstance(model, MobileNetV2Small):
        return f"MobileNetV2Small(stages={model.stages}, classes={model.head.out_features})"
    return f"DSResNet(widths={model.widths}, classes={model.head.out_features})"


def _train(recipe: Recipe, profile: Profile, network: tuple[str, int], data: tuple[ImageData, ImageData, dict],
           seed: int, dtype: torch.dtype, folder: Path, progress: bool, stop_after: int | None) -> dict:
    """The training loop of `train_classifier`, run while holding the run folder's lock.
    `network`: its name and width factor; `data`: the full training split, the test split and
    the record's `data_source` entry."""
    full_train, test, source = data
    device = pick_device()
    train, validation = split_validation(full_train, seed=seed)
    mean, std = channel_stats(train.images)
    images, labels = train.images.to(device), train.labels.to(device)
    scored, full = _evaluation_splits((images, labels), validation, test, profile.eval_images, device)
    torch.manual_seed(seed)
    model = build_classifier(network[0], len(train.classes), network[1]).to(device, memory_format=torch.channels_last)
    optimizer, schedule = make_optimizer(model, recipe, profile.classifier_steps)
    record = _classifier_record(folder, model, network, recipe, profile, seed, dtype,
                                (train, validation, test, source), scored)
    run = TrainingRun(folder, _architecture(model), {"model": model, "optimizer": optimizer, "schedule": schedule},
                      profile.classifier_steps, record, progress_keys=("history",), carry={"losses": []})
    run.resume(device)
    for step in run.steps(stop_after, save_every=profile.eval_every, progress=progress):
        # Mini-batch number `step` and its augmentation: functions of (seed, step) alone.
        index = batch_indices(len(labels), profile.classifier_batch, step, seed).to(device)
        rng = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        run.carry["losses"].append(classifier_step(model, optimizer, schedule, images[index], labels[index], mean,
                                                   std, recipe, rng, dtype))  # kept over a resume
        if (step + 1) % profile.eval_every == 0 or step + 1 == run.total:
            loss = torch.stack(run.carry["losses"]).mean().item()
            _check_finite_loss(loss, step, folder)
            accuracy = scores(model, scored, mean, std, recipe.flip_tta, dtype)
            record["history"].append({"step": step + 1, "lr": schedule.get_last_lr()[0], "train_loss": loss,
                                      **accuracy})
            run.carry["losses"] = []
            run.bar.set_postfix(val=f"{accuracy['validation']:.3f}", loss=f"{loss:.3f}")
    if run.done < run.total:
        return run.finish()
    return run.finish(final=final_accuracy(record["history"]),
                      full_splits={**scores(model, full, mean, std, recipe.flip_tta, dtype),
                                   "images": {name: len(labels) for name, (_, labels) in full.items()}})


def _check_finite_loss(loss: float, step: int, folder: Path) -> None:
    """Raise a FloatingPointError, saying what to do, when the mean training loss is not finite."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"the training loss became {loss} before step {step + 1}; the last good checkpoint is kept in "
            f"{folder / CHECKPOINT}. Lower the learning rate of the recipe or change the seed (either makes a "
            f"new run); delete the folder to start this one over.")


def load_trained_classifier(record: dict, runs_dir: str | Path | None = None,
                            device: torch.device | str = "cpu") -> nn.Module:
    """The trained classifier of a run record, in eval mode (its checkpoint must be of that run
    and step)."""
    path = runs_root(runs_dir) / "classifier" / record["run"] / CHECKPOINT
    state = load_checkpoint(path, record["architecture"], device, keys=("model",), run=record["run"],
                            step=record["step"])
    model = build_classifier(record["network"], record["num_classes"], record["width_factor"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.runs.classifier",
                                     description="Train a classifier headless; notebooks then load the cached result.")
    parser.add_argument("--profile", choices=list(PROFILES), default=None, help="default: $NBCODE_PROFILE or quick")
    parser.add_argument("--recipe", choices=list(RECIPES), default="paper")
    parser.add_argument("--width-factor", type=int, default=1, help="1: 94,372 parameters; 2: 334,052")
    parser.add_argument("--network", choices=NETWORKS, default="dsresnet",
                        help="the paper's DS-ResNet or chapter 8's MobileNetV2 (93,180 parameters, width 1 only)")
    parser.add_argument("--dataset", choices=["cifar100", "cifar10", "synthetic"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default=None, help="default: $NBCODE_RUNS or ~/.cache/nbcode/runs")
    args = parser.parse_args()
    try:
        build_classifier(args.network, 100, args.width_factor)
    except ValueError as error:
        parser.error(str(error))
    try:
        ensure_downloaded(get_profile(args.profile), args.dataset)
    except DataMissingError as error:
        raise SystemExit(str(error)) from None
    record = train_classifier(args.recipe, get_profile(args.profile), width_factor=args.width_factor,
                              network=args.network, dataset=args.dataset, seed=args.seed, runs_dir=args.runs_dir)
    final, full = record["final"], record["full_splits"]
    print(f"{record['run']}: final weights {full['test']:.2%} on all {full['images']['test']:,} test images, "
          f"{full['validation']:.2%} on all {full['images']['validation']:,} validation images; "
          f"last {final['test']['evals']} evaluations: test {final['test']['mean']:.2%} +- "
          f"{final['test']['std']:.2%}, validation {final['validation']['mean']:.2%}; "
          f"{record['train_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
