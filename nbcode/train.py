"""Training the DS-ResNet: recipes, the loop, evaluation, checkpoints, caching and a CLI.

    record = train_classifier("paper", get_profile("quick"))   # trains, or loads the cached result
    record["final"]["test"]             # over the last evaluations: {"mean": ..., "std": ..., "evals": ...}
    record["full_splits"]["test"]       # the final weights on the whole test split

Headless, e.g. on a GPU box (the notebook then finds the cached run):

    python -m nbcode.train classifier --profile paper --recipe improved

Every run lives in its own folder under the runs root ($NBCODE_RUNS, default ~/.cache/nbcode/runs),
named by what produced it: recipe, width, dataset, profile, steps x batch and seed, then a short
hash of every setting and of the data actually loaded (`run_name`). It holds `checkpoint.pt`
(written atomically every evaluation) and `metrics.json` (the run record); a lock on the folder
makes a second process wait for the first one's result instead of training the run again.
Batches and augmentation are drawn from (seed, step) alone, so a run resumed from a checkpoint
ends with exactly the weights of an uninterrupted one.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nbcode.allocator import keep_freed_memory
from nbcode.augment import Augmentation, augment_batch, prepare_batch
from nbcode.checkpoint import (git_commit, load_checkpoint, read_record, run_lock, runs_root, save_checkpoint,
                               settings_hash, write_json)
from nbcode.data import (DataMissingError, ImageData, batch_indices, channel_stats, dataset_name,
                         ensure_downloaded, load_for_profile)
from nbcode.precision import autocast, precision_name, training_dtype
from nbcode.profiles import PROFILES, Profile, get_profile, pick_device
from nbcode.resnet import DSResNet, count_parameters
from nbcode.verdict import verdict

VALIDATION_FRACTION = 0.1  # of the training split, held out for every choice we make


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, learning-rate schedule, regularisation and test-time augmentation.

    Attributes:
        name: "paper" or "improved".
        optimizer: "adam" (coupled L2, as torch.optim.Adam) or "adamw" (decoupled weight decay).
        lr: peak learning rate.
        weight_decay: AdamW decay, applied to conv and linear weights only (not BN or biases).
        schedule: "constant" or "onecycle" (linear warm-up over 15% of steps, cosine decay to ~0).
        label_smoothing: cross-entropy label smoothing.
        flip_tta: average the logits of each test image and its mirror image.
    """

    name: str
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    label_smoothing: float
    flip_tta: bool
    augmentation: Augmentation = Augmentation()


RECIPES = {
    "paper": Recipe("paper", "adam", lr=1e-3, weight_decay=0.0, schedule="constant", label_smoothing=0.0,
                    flip_tta=False),
    "improved": Recipe("improved", "adamw", lr=4e-3, weight_decay=0.05, schedule="onecycle", label_smoothing=0.1,
                       flip_tta=True),
}


def ablations(recipe: Recipe = RECIPES["improved"]) -> dict[str, Recipe]:
    """The improved recipe with one of its training changes undone at a time (back to the
    paper's setting), keyed by the change that is missing:

        "AdamW + weight decay"  -> Adam without decay
        "one-cycle schedule"    -> the paper's constant lr 1e-3
        "label smoothing"       -> none

    The fourth change, flip TTA, does not touch training: `without_flip_tta` reads its
    ablation off the improved run itself.
    """
    paper = RECIPES["paper"]
    return {"AdamW + weight decay": replace(recipe, name=f"{recipe.name}-no-adamw", optimizer=paper.optimizer,
                                            weight_decay=paper.weight_decay),
            "one-cycle schedule": replace(recipe, name=f"{recipe.name}-no-onecycle", schedule=paper.schedule,
                                          lr=paper.lr),
            "label smoothing": replace(recipe, name=f"{recipe.name}-no-smoothing",
                                       label_smoothing=paper.label_smoothing)}


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


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; a ValueError lists the valid ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


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


def make_optimizer(model: nn.Module, recipe: Recipe,
                   steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The recipe's optimiser (weight decay on >= 2-D weights only) and its per-step schedule."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "adam":
        optimizer = torch.optim.Adam(groups, lr=recipe.lr)
    elif recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=recipe.lr)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; valid: adam, adamw")
    if recipe.schedule == "onecycle":
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=steps,
                                                       pct_start=0.15, anneal_strategy="cos")
    elif recipe.schedule == "constant":
        schedule = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        raise ValueError(f"unknown schedule {recipe.schedule!r}; valid: constant, onecycle")
    return optimizer, schedule


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
             flip_tta: bool = False, dtype: torch.dtype = torch.float32, batch_size: int = 1000) -> dict[str, float]:
    """Top-1 accuracy in [0, 1] of `model` in eval mode; with `flip_tta`, also with flip
    test-time augmentation, from the same forward passes plus one on the mirror images.

    The forward passes run in `dtype`, the precision the model trained in (bf16 autocast scores
    ~2x faster than fp32 on a CPU with AMX; nbcode.precision).

    Args:
        images: (N, 3, 32, 32) uint8 on the model's device; labels: (N,) int64.
    Returns:
        {"plain": from the logits of each image} and, with `flip_tta`, {"flip_tta": from the
        logits of each image and of its mirror image, summed}.
    """
    was_training = model.training
    model.eval()
    correct = {"plain": 0, "flip_tta": 0} if flip_tta else {"plain": 0}
    for start in range(0, len(labels), batch_size):
        x = prepare_batch(images[start:start + batch_size], mean, std).contiguous(memory_format=torch.channels_last)
        y = labels[start:start + batch_size]
        with autocast(x.device, dtype):
            logits = model(x).float()
            correct["plain"] += (logits.argmax(1) == y).sum().item()
            if flip_tta:
                correct["flip_tta"] += ((logits + model(x.flip(3)).float()).argmax(1) == y).sum().item()
    model.train(was_training)
    return {name: count / len(labels) for name, count in correct.items()}


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


def training_batch(images: torch.Tensor, labels: torch.Tensor, batch_size: int, step: int, seed: int,
                   mean: torch.Tensor, std: torch.Tensor,
                   augmentation: Augmentation) -> tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch number `step`, augmented: a function of (seed, step) alone.

    Args:
        images: (N, 3, 32, 32) uint8 on the training device; labels: (N,) int64.
    Returns:
        (B, 3, 32, 32) float32 in channels_last layout, normalised; (B,) labels.
    """
    index = batch_indices(len(labels), batch_size, step, seed).to(images.device)
    generator = torch.Generator(device=images.device).manual_seed(seed * 1_000_003 + step)
    x = augment_batch(images[index], mean, std, augmentation, generator)
    return x.contiguous(memory_format=torch.channels_last), labels[index]


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  label_smoothing: float = 0.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Forward (under bf16 autocast when `dtype` is bfloat16), cross-entropy, backward and one
    optimiser step on the fp32 weights; returns the detached loss."""
    with autocast(x.device, dtype):
        loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def run_name(recipe: Recipe, width_factor: int, train: ImageData, test: ImageData, profile: Profile,
             seed: int, dtype: torch.dtype) -> str:
    """The folder name of a run: a readable part, then a hash of everything that determines its
    result (every setting of the recipe, the width, the data actually loaded, the budgets, the
    seed, the training precision)."""
    budgets = ("train_limit", "classifier_steps", "classifier_batch", "eval_every", "eval_images")
    key = {"recipe": asdict(recipe), "width_factor": width_factor, "seed": seed, "precision": precision_name(dtype),
           "budgets": {name: getattr(profile, name) for name in budgets},
           "data": [[d.name, d.split, d.verified, len(d), d.fingerprint()] for d in (train, test)]}
    return (f"dsresnet-x{width_factor}-{recipe.name}-{train.name}-{profile.name}-"
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


def recipe_verdict(baseline: dict, other: dict) -> str:
    """One sentence: other - baseline validation accuracy in points, with its spread, and the verdict.

    The spread combines, for both runs, the std over the last evaluations and the sampling error
    of an accuracy p measured on n validation images, sqrt(p (1 - p) / n). A difference under
    twice the spread is called "inconclusive at this budget".
    """
    def mean_and_variance(record: dict) -> tuple[float, float]:
        final, n = record["final"]["validation"], record["eval_images"]["validation"]
        return final["mean"], final["std"] ** 2 + final["mean"] * (1 - final["mean"]) / n

    (a, var_a), (b, var_b) = mean_and_variance(baseline), mean_and_variance(other)
    difference, spread = 100 * (b - a), 100 * (var_a + var_b) ** 0.5
    def label(record: dict) -> str:
        seed = f" seed {record['seed']}" if baseline["seed"] != other["seed"] else ""
        return f"{record['recipe']['name']} x{record['width_factor']}{seed}"

    name = f"{label(other)} - {label(baseline)}"
    measured = (f"{name} = {difference:+.1f} points on validation (spread {spread:.1f}: last "
                f"{other['final']['validation']['evals']} evaluations and {other['eval_images']['validation']:,} "
                f"images; {other['dataset']}, {other['profile']} profile, {other['steps']:,} steps x {other['batch']})")
    return verdict(measured, difference, spread, f"{'better' if difference > 0 else 'worse'} at this budget")


def train_classifier(recipe_name: str | Recipe, profile: Profile, *, width_factor: int = 1, dataset: str | None = None,
                     seed: int = 0, runs_dir: str | Path | None = None, progress: bool = True,
                     stop_after: int | None = None) -> dict:
    """Train the DS-ResNet with a recipe at a profile's budget, or return the cached record.

    Args:
        recipe_name: a key of RECIPES, or a Recipe (e.g. one of `ablations()`).
        profile: the budgets (classifier_steps, classifier_batch, eval_every, train_limit).
        width_factor: 1 for the paper's 94,372-parameter model, 2 for its 334,052-parameter one.
        dataset: "cifar100", "cifar10" or "synthetic" (default: $NBCODE_DATASET or cifar100).
        stop_after: stop (with a checkpoint) once this step is reached; a later call resumes.
    Returns:
        The run record, also written to metrics.json: settings, history of evaluations
        ({step, lr, train_loss, train, validation, test} accuracies in [0, 1]) and, when the
        run is complete, "final": mean +- std of each accuracy over the last evaluations.
    """
    keep_freed_memory()  # batch-512 activations of 32-64 MiB, reused instead of page-faulted
    recipe = recipe_name if isinstance(recipe_name, Recipe) else get_recipe(recipe_name)
    dataset = dataset_name(dataset)
    full_train = load_for_profile(profile, "train", dataset)
    test = load_for_profile(profile, "test", dataset)
    dtype = training_dtype(pick_device())
    folder = runs_root(runs_dir) / "classifier" / run_name(recipe, width_factor, full_train, test, profile, seed,
                                                            dtype)
    with run_lock(folder):  # a second process asking for this run waits, then reads the result
        record = read_record(folder / "metrics.json")
        if record is not None and record.get("step") == profile.classifier_steps and "final" in record:
            return record
        return _train_classifier_locked(recipe, profile, width_factor, full_train, test, seed, dtype, folder,
                                        progress, stop_after)


def _train_classifier_locked(recipe: Recipe, profile: Profile, width_factor: int, full_train: ImageData,
                             test: ImageData, seed: int, dtype: torch.dtype, folder: Path, progress: bool,
                             stop_after: int | None) -> dict:
    """The body of train_classifier, run while holding the run folder's lock."""
    metrics_path, checkpoint_path = folder / "metrics.json", folder / "checkpoint.pt"
    steps = profile.classifier_steps
    device = pick_device()
    train, validation = split_validation(full_train, seed=seed)
    mean, std = channel_stats(train.images)
    images, labels = train.images.to(device), train.labels.to(device)
    n = profile.eval_images or len(test)  # the same number of images from each split
    full = {"validation": (validation.images.to(device), validation.labels.to(device)),
            "test": (test.images.to(device), test.labels.to(device))}
    scored = {"train": (images[:n], labels[:n]),  # re-scored without augmentation
              **{name: (x_[:n], y_[:n]) for name, (x_, y_) in full.items()}}

    torch.manual_seed(seed)
    model = DSResNet(num_classes=len(train.classes), width_factor=width_factor)
    architecture = f"DSResNet(widths={model.widths}, classes={len(train.classes)})"
    model = model.to(device, memory_format=torch.channels_last)
    optimizer, schedule = make_optimizer(model, recipe, steps)
    done, history, seconds = 0, [], 0.0
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, architecture, device,
                                keys=("step", "history", "seconds", "model", "optimizer", "schedule"))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        done, history, seconds = state["step"], state["history"], state["seconds"]

    record = {"kind": "classifier", "run": folder.name, "architecture": architecture,
              "width_factor": width_factor, "num_classes": len(train.classes),
              "parameters": count_parameters(model), "recipe": asdict(recipe), "profile": profile.name,
              "steps": steps, "batch": profile.classifier_batch, "seed": seed, "precision": precision_name(dtype),
              "dataset": train.name,
              "data": {"train": train.describe(), "validation": validation.describe(), "test": test.describe()},
              "eval_images": {name: len(y_) for name, (_, y_) in scored.items()},
              "device": str(device), "commit": git_commit()}
    last = min(steps, stop_after) if stop_after is not None else steps
    losses = []
    bar = tqdm(range(done, last), initial=done, total=steps, desc=folder.name, disable=not progress)
    started, seconds_before = time.perf_counter(), seconds
    for step in bar:
        x, y = training_batch(images, labels, profile.classifier_batch, step, seed, mean, std, recipe.augmentation)
        losses.append(training_step(model, optimizer, x, y, recipe.label_smoothing, dtype))
        schedule.step()
        done = step + 1
        evaluate_now = done % profile.eval_every == 0 or done == steps
        if evaluate_now:
            accuracy = scores(model, scored, mean, std, recipe.flip_tta, dtype)
            history.append({"step": done, "lr": schedule.get_last_lr()[0],
                            "train_loss": torch.stack(losses).mean().item(), **accuracy})
            losses = []
            bar.set_postfix(val=f"{accuracy['validation']:.3f}", loss=f"{history[-1]['train_loss']:.3f}")
        if evaluate_now or done == last:
            seconds = seconds_before + time.perf_counter() - started
            save_checkpoint(checkpoint_path, {"architecture": architecture, "step": done, "history": history,
                                              "seconds": seconds, "model": model.state_dict(),
                                              "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()})
            record.update(step=done, history=history, train_seconds=seconds)
            write_json(metrics_path, record)  # progress a reader can follow; "final" is added once complete
    bar.close()
    # Whatever the loop did (nothing, when the checkpoint already held the last step asked for),
    # the record ends complete, consistent with the checkpoint, and on disk.
    record.update(step=done, history=history, train_seconds=seconds)
    if done == steps:
        record["final"] = final_accuracy(history)
        record["full_splits"] = {**scores(model, full, mean, std, recipe.flip_tta, dtype),
                                 "images": {name: len(y_) for name, (_, y_) in full.items()}}
    write_json(metrics_path, record)
    return record


def load_trained_classifier(record: dict, runs_dir: str | Path | None = None,
                            device: torch.device | str = "cpu") -> nn.Module:
    """The trained DS-ResNet of a run record, in eval mode."""
    path = runs_root(runs_dir) / "classifier" / record["run"] / "checkpoint.pt"
    state = load_checkpoint(path, record["architecture"], device)
    model = DSResNet(num_classes=record["num_classes"], width_factor=record["width_factor"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.train",
                                     description="Train headless; notebooks then load the cached result.")
    commands = parser.add_subparsers(dest="command", required=True)
    classifier = commands.add_parser("classifier", help="train the DS-ResNet")
    classifier.add_argument("--profile", choices=list(PROFILES), default=None, help="default: $NBCODE_PROFILE or quick")
    classifier.add_argument("--recipe", choices=list(RECIPES), default="paper")
    classifier.add_argument("--width-factor", type=int, default=1, help="1: 94,372 parameters; 2: 334,052")
    classifier.add_argument("--dataset", choices=["cifar100", "cifar10", "synthetic"], default=None)
    classifier.add_argument("--seed", type=int, default=0)
    classifier.add_argument("--runs-dir", default=None, help="default: $NBCODE_RUNS or ~/.cache/nbcode/runs")
    args = parser.parse_args()
    try:
        ensure_downloaded(get_profile(args.profile), args.dataset)
    except DataMissingError as error:
        raise SystemExit(str(error)) from None
    record = train_classifier(args.recipe, get_profile(args.profile), width_factor=args.width_factor,
                              dataset=args.dataset, seed=args.seed, runs_dir=args.runs_dir)
    final, full = record["final"], record["full_splits"]
    print(f"{record['run']}: final weights {full['test']:.2%} on all {full['images']['test']:,} test images, "
          f"{full['validation']:.2%} on all {full['images']['validation']:,} validation images; "
          f"last {final['test']['evals']} evaluations: test {final['test']['mean']:.2%} +- "
          f"{final['test']['std']:.2%}, validation {final['validation']['mean']:.2%}; "
          f"{record['train_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
