"""Training runs of the conditional SN-GAN: cached, resumable, recorded, with sample grids; a CLI.

    record = train_gan(GANSettings(loss="aw"), get_profile("quick"))   # trains, or loads the cache
    g = load_trained_generator(record)                                  # EMA generator, eval mode

Headless:  python -m nbcode.runs.gan --profile paper --loss aw [--recipe improved] [--generator sle]

The settings and the D and G updates are the paper's layer (nbcode.gan_recipe); this module runs
them. Like the classifier's, a run lives in a folder under the runs root named by what produced it
(a readable part and a hash of every setting and of the data actually loaded), locked while it
trains, checkpointed ten times per run and after every ten minutes of training
(nbcode.runs.scaffold); a resumed run continues exactly.
A non-finite loss stops training with a clear message, and the last good checkpoint stays on
disk. Sample grids from fixed noise and labels are saved as PNG.
"""
from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torchvision.utils import save_image

from nbcode.cost import count_parameters
from nbcode.data.datasets import (
    DataMissingError,
    ImageData,
    batch_indices,
    data_source,
    dataset_name,
    ensure_downloaded,
    load_for_profile,
)
from nbcode.gan import to_gan_range
from nbcode.gan_recipe import (
    GAN_RECIPES,
    GENERATORS,
    GANSettings,
    build_gan,
    gan_iteration,
    scheduled_rates,
    set_rates,
    update_ema,
)
from nbcode.runs.allocator import keep_freed_memory
from nbcode.runs.cache import git_commit, load_checkpoint, runs_root, save_checkpoint, settings_hash
from nbcode.runs.precision import precision_name, training_dtype
from nbcode.runs.profiles import PROFILES, Profile, get_profile, pick_device
from nbcode.runs.scaffold import CHECKPOINT, TrainingRun, finished_record, train_or_load

GRID_CLASSES = 10  # rows of the fixed sample grid
GRID_PER_CLASS = 8
LOG_KEYS = ("d_loss", "g_loss", "real_score", "fake_score", "w_real", "w_fake", "case")  # per iteration


class GANDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


def train_gan(settings: GANSettings, profile: Profile, *, dataset: str | None = None, seed: int = 0,
              runs_dir: str | Path | None = None, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train G and D for `profile.gan_iterations` generator steps, or return the cached record.

    Each iteration is `gan_iteration`: one discriminator step (aw or hinge loss), then one
    generator step (eq. 5), on one batch of real images and one generated batch.

    Returns:
        The run record (also metrics.json): settings, parameter counts, and per-iteration logs of
        the losses, mean sigmoid scores, and for aw the weights and the case that fired.
    """
    keep_freed_memory()  # large freed blocks reused instead of page-faulted (nbcode.runs.allocator)
    train, folder, dtype = _data_and_folder(settings, profile, dataset, seed, runs_dir)
    source = data_source(train, dataset_name(dataset))
    return train_or_load(folder, _finished(profile),
                         lambda: _train(settings, profile, (train, source), seed, dtype, folder, progress, stop_after))


def is_trained(settings: GANSettings, profile: Profile, *, dataset: str | None = None, seed: int = 0,
               runs_dir: str | Path | None = None) -> bool:
    """True when `train_gan` with these arguments would load a finished run instead of training."""
    return is_finished(run_folder(settings, profile, dataset=dataset, seed=seed, runs_dir=runs_dir), profile)


def is_finished(folder: Path, profile: Profile) -> bool:
    """True when the run folder `folder` holds a run finished at `profile`'s budget (record and checkpoint)."""
    return finished_record(folder, _finished(profile)) is not None


def run_folder(settings: GANSettings, profile: Profile, *, dataset: str | None = None, seed: int = 0,
               runs_dir: str | Path | None = None) -> Path:
    """The run folder `train_gan` with these arguments trains in (its name is the run's name)."""
    return _data_and_folder(settings, profile, dataset, seed, runs_dir)[1]


def _finished(profile: Profile) -> Callable[[dict], bool]:
    """Whether a GAN run record is complete at `profile`'s budget."""
    return lambda record: record.get("step") == profile.gan_iterations


def _data_and_folder(settings: GANSettings, profile: Profile, dataset: str | None, seed: int,
                     runs_dir: str | Path | None) -> tuple[ImageData, Path, torch.dtype]:
    """The training split a run uses, its run folder and its training precision (nbcode.runs.precision)."""
    train = load_for_profile(profile, "train", dataset_name(dataset))
    dtype = training_dtype(pick_device())
    return train, runs_root(runs_dir) / "gan" / run_name(settings, train, profile, seed, dtype), dtype


def real_batch(images: torch.Tensor, batch: int, step: int, seed: int, rng: torch.Generator) -> tuple[torch.Tensor,
                                                                                                    torch.Tensor]:
    """Mini-batch number `step` of real images, randomly mirrored, in [-1, 1] and channels_last
    (the layout of build_gan's networks), and its indices. images: (N, 3, 32, 32) uint8."""
    index = batch_indices(len(images), batch, step, seed).to(images.device)
    real = to_gan_range(images[index])
    real = torch.where(torch.rand(batch, 1, 1, 1, generator=rng, device=images.device) < 0.5, real.flip(3), real)
    return real.contiguous(memory_format=torch.channels_last), index


def _gan_record(folder: Path, settings: GANSettings, profile: Profile, data: tuple[ImageData, dict], seed: int,
                dtype: torch.dtype, parameters: dict[str, int], grid_labels: torch.Tensor | None) -> dict:
    """The settings part of a GAN run record (the loop fills its log); `data`: the training split
    and the record's `data_source` entry."""
    train, source = data
    return {"kind": "gan", "run": folder.name, "architecture": _architecture(settings, train),
            "settings": asdict(settings) | {"augment": list(settings.augment)},  # as JSON reads it back
            "parameters": parameters, "profile": profile.name,
            "iterations": profile.gan_iterations, "batch": profile.gan_batch, "seed": seed,
            "precision": precision_name(dtype), "dataset": train.name, "data": train.describe(),
            "data_source": source, "classes": train.classes, "device": str(pick_device()), "commit": git_commit(),
            "grid_labels": None if grid_labels is None else grid_labels.tolist(),
            "log": {key: [] for key in LOG_KEYS}}


def _architecture(settings: GANSettings, train: ImageData) -> str:
    """The name a checkpoint of this GAN carries: its generator and number of classes."""
    return f"SNGAN(generator={settings.generator}, classes={len(train.classes) if settings.conditional else 0})"


def _check_finite(stats: dict, step: int, folder: Path) -> None:
    """Raise GANDivergedError, saying what to do, when a loss of iteration `step` is not finite."""
    if not (math.isfinite(stats["d_loss"]) and math.isfinite(stats["g_loss"])):
        raise GANDivergedError(
            f"training diverged at iteration {step + 1}: D loss {stats['d_loss']}, G loss {stats['g_loss']}. "
            f"The last good checkpoint is kept in {folder / CHECKPOINT}; lower the learning rates "
            f"(GANSettings(lr=..., lr_d=...), or --lr and --lr-d on the command line) or change the seed: either "
            f"makes a new run. "
            f"Delete the folder to start this one over.")


def _train(settings: GANSettings, profile: Profile, data: tuple[ImageData, dict], seed: int, dtype: torch.dtype,
           folder: Path, progress: bool, stop_after: int | None) -> dict:
    """The training loop of `train_gan`, run while holding the run folder's lock; `data`: the
    training split and the record's `data_source` entry."""
    train = data[0]
    device = pick_device()
    num_classes = len(train.classes) if settings.conditional else 0
    images, labels = train.images.to(device), train.labels.to(device)
    torch.manual_seed(seed)
    g, d, g_opt, d_opt = build_gan(num_classes, settings.lr, device, lr_d=settings.lr_d, generator=settings.generator)
    g_ema = copy.deepcopy(g).eval()  # the average starts as the generator itself
    grid_z, grid_y = _grid_inputs(num_classes, g.latent, device)
    record = _gan_record(folder, settings, profile, data, seed, dtype,
                         {"generator": count_parameters(g), "discriminator": count_parameters(d)}, grid_y)
    run = TrainingRun(folder, record["architecture"], {"g": g, "d": d, "g_ema": g_ema, "g_opt": g_opt, "d_opt": d_opt},
                      profile.gan_iterations, record, progress_keys=("log",))
    run.resume(device)
    every = max(1, run.total // 10)  # sample grids and checkpoints ten times per run
    for step in run.steps(stop_after, save_every=every, progress=progress):
        rng = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        real, index = real_batch(images, profile.gan_batch, step, seed, rng)
        set_rates(g_opt, d_opt, scheduled_rates(settings, step, run.total))
        stats = gan_iteration(g, d, g_opt, d_opt, real, labels[index] if num_classes else None, settings.loss, rng,
                              dtype, settings.augment)
        update_ema(g_ema, g, min(settings.ema, (1 + step) / (10 + step)))  # short warm-up of the average
        _check_finite(stats, step, folder)
        for key, value in stats.items():
            record["log"][key].append(value)
        if (step + 1) % every == 0 or step + 1 == run.total:
            save_grid(g_ema, grid_z, grid_y, folder / grid_name(step + 1))
    return run.finish()


def grid_name(step: int) -> str:
    """The file name of the sample grid drawn after `step` iterations."""
    return f"samples_{step:06d}.png"


@torch.no_grad()
def save_grid(g: torch.nn.Module, grid_z: torch.Tensor, grid_y: torch.Tensor | None, path: Path) -> None:
    """Draw the fixed-noise sample grid of `g` (one class per row) and save it as a PNG."""
    save_image(g(grid_z, grid_y).add(1).div(2), path, nrow=GRID_PER_CLASS)


def final_grid(record: dict, runs_dir: str | Path | None = None) -> Path:
    """The sample grid of a finished GAN run at its last iteration; drawn again from the
    checkpoint's averaged generator when the file is missing (never an earlier grid)."""
    path = runs_root(runs_dir) / "gan" / record["run"] / grid_name(record["step"])
    if not path.exists():
        g = load_trained_generator(record, runs_dir)
        save_grid(g, *_grid_inputs(g.num_classes, g.latent, torch.device("cpu")), path)
    return path


def _grid_inputs(num_classes: int, latent: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed noise (GRID_CLASSES * GRID_PER_CLASS, latent) and labels of the sample grids:
    GRID_CLASSES rows of classes spread over the label range (None when unconditional)."""
    fixed = torch.Generator().manual_seed(12345)
    grid_z = torch.randn(GRID_CLASSES * GRID_PER_CLASS, latent, generator=fixed).to(device)
    if not num_classes:
        return grid_z, None
    rows = torch.arange(GRID_CLASSES).repeat_interleave(GRID_PER_CLASS) * max(1, num_classes // GRID_CLASSES)
    return grid_z, rows.to(device)


def run_name(settings: GANSettings, train: ImageData, profile: Profile, seed: int, dtype: torch.dtype) -> str:
    """The folder name of a run: a readable part, then a hash of everything that determines its
    result (every setting, the training data actually loaded, the budgets, the seed, the precision)."""
    key = {"settings": asdict(settings), "seed": seed, "precision": precision_name(dtype),
           "budgets": {name: getattr(profile, name) for name in ("train_limit", "gan_iterations", "gan_batch")},
           "data": [train.name, train.split, train.verified, len(train), train.fingerprint()]}
    kind = "conditional" if settings.conditional else "unconditional"
    generator = "" if settings.generator == "table1" else f"{settings.generator}-"  # Table 1's goes unnamed
    return (f"gan-{generator}{kind}-{settings.loss}-{settings.name}-{train.name}-{profile.name}-"
            f"{profile.gan_iterations}x{profile.gan_batch}-"
            f"seed{seed}-{precision_name(dtype)}-{settings_hash(key)}")


def run_summary(record: dict) -> str:
    """A few sentences on what happened in an aw run, computed from its log: over the second
    half of the iterations, how often each side was protected, the mean weights, the losses and
    the mean sigmoid scores against the first tenth."""
    log, total = record["log"], len(record["log"]["d_loss"])
    half, tenth = slice(total // 2, None), slice(0, max(1, total // 10))

    def mean(key: str, part: slice) -> float:
        values = log[key][part]
        return sum(values) / max(1, len(values))

    budget = f"{record['dataset']}, {record['profile']} profile, {total:,} iterations x {record['batch']}"
    scores = (f"D loss {mean('d_loss', tenth):.3f} in the first tenth, {mean('d_loss', half):.3f} in the second "
              f"half; real score r_s {mean('real_score', half):.2f} against generated f_s "
              f"{mean('fake_score', half):.2f} ({budget})")
    cases = log["case"][half]
    if not cases:
        return f"{record['settings']['loss']} loss: {scores}."
    shares = {case: cases.count(case) / len(cases) for case in dict.fromkeys(cases)}
    real_side = sum(v for k, v in shares.items() if k.startswith("real behind"))
    fake_side = sum(v for k, v in shares.items() if k.startswith("real ahead"))
    common = max(shares, key=shares.get)
    return (f"In the second half the aw rule protected the real loss in {real_side:.0%} of discriminator "
            f"steps, the fake loss in {fake_side:.0%}, and summed both (balanced) in "
            f"{shares.get('balanced', 0.0):.0%}; most often: {common}. Mean weights w_r "
            f"{mean('w_real', half):.2f}, w_f {mean('w_fake', half):.2f}. {scores}.")


def load_trained_generator(record: dict, runs_dir: str | Path | None = None, device: torch.device | str = "cpu",
                           ema: bool = True, checkpoint: Path | None = None) -> torch.nn.Module:
    """The trained generator of a GAN run record (the EMA copy by default; Table 1's or the SLE
    one, as the run's settings say), in eval mode. Its weights come from the run folder's
    checkpoint, or from `checkpoint` (an export's generator file, `export_generator`)."""
    key = "g_ema" if ema else "g"
    state = _trained_state(record, key, runs_dir, device, checkpoint)
    settings = record["settings"]
    g = GENERATORS[settings["generator"]](len(record["classes"]) if settings["conditional"] else 0)
    g.load_state_dict(state[key])
    return g.to(device).eval()


def export_generator(record: dict, path: Path, runs_dir: str | Path | None = None) -> None:
    """Save the averaged generator of a finished GAN run alone at `path` (about 2.2 MB for Table 1's
    552,195 parameters in fp32), named with its run, step and architecture, so that
    `load_trained_generator(record, checkpoint=path)` samples it, and evaluates it, without the run folder."""
    state = _trained_state(record, "g_ema", runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {key: state[key] for key in ("architecture", "run", "step", "g_ema")})


def _trained_state(record: dict, key: str, runs_dir: str | Path | None, device: torch.device | str = "cpu",
                   checkpoint: Path | None = None) -> dict:
    """The checkpoint of a GAN run record holding `key` ("g", "g_ema"), from its run folder or from
    `checkpoint`, checked to be of that run and step (nbcode.runs.cache.load_checkpoint)."""
    path = checkpoint or runs_root(runs_dir) / "gan" / record["run"] / CHECKPOINT
    return load_checkpoint(path, record["architecture"], device, keys=(key,), run=record["run"], step=record["step"])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.runs.gan", description="Train the SN-GAN headless.")
    parser.add_argument("--profile", choices=list(PROFILES), default=None, help="default: $NBCODE_PROFILE or quick")
    parser.add_argument("--recipe", choices=list(GAN_RECIPES), default="paper",
                        help="the paper's recipe or ours (the rate and EMA options below override it)")
    parser.add_argument("--loss", choices=["aw", "hinge"], default="aw")
    parser.add_argument("--unconditional", action="store_true")
    parser.add_argument("--generator", choices=list(GENERATORS), default=None,
                        help="Table 1's generator (default) or chapter 8's SLE + separable-conv one")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate of G (and of D, unless --lr-d)")
    parser.add_argument("--lr-d", type=float, default=None, help="the discriminator's own learning rate")
    parser.add_argument("--ema", type=float, default=None, help="decay of the generator's average")
    parser.add_argument("--dataset", choices=["cifar100", "cifar10", "synthetic"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default=None, help="default: $NBCODE_RUNS or ~/.cache/nbcode/runs")
    args = parser.parse_args()
    try:
        chosen = {"lr": args.lr, "lr_d": args.lr_d, "ema": args.ema, "generator": args.generator}
        settings = replace(GAN_RECIPES[args.recipe], loss=args.loss, conditional=not args.unconditional,
                           **{key: value for key, value in chosen.items() if value is not None})
    except ValueError as error:
        parser.error(str(error))
    try:
        ensure_downloaded(get_profile(args.profile), args.dataset)
    except DataMissingError as error:
        raise SystemExit(str(error)) from None
    record = train_gan(settings, get_profile(args.profile), dataset=args.dataset, seed=args.seed,
                       runs_dir=args.runs_dir)
    print(f"{record['run']}: {record['step']} iterations; final D loss {record['log']['d_loss'][-1]:.3f}, "
          f"G loss {record['log']['g_loss'][-1]:.3f}")


if __name__ == "__main__":
    main()
