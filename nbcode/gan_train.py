"""Training the conditional SN-GAN with the hinge or the adaptive-weighted (aw) loss.

    record = train_gan(GANSettings(loss="aw"), get_profile("quick"))   # trains, or loads the cache
    g = load_trained_generator(record)                                  # EMA generator, eval mode

Headless:  python -m nbcode.gan_train --profile paper --loss aw

Like the classifier (nbcode.train), a run lives in a folder under the runs root named by what
produced it (a readable part and a hash of every setting and of the data actually loaded), locked
while it trains; `checkpoint.pt` is written atomically ten times per run and a resumed run
continues exactly. A non-finite loss stops training with a clear message, and the
last good checkpoint stays on disk. Sample grids from fixed noise and labels are saved as PNG.
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize
from torchvision.utils import save_image
from tqdm.auto import tqdm

from nbcode.allocator import keep_freed_memory
from nbcode.checkpoint import (git_commit, load_checkpoint, read_record, run_lock, runs_root, save_checkpoint,
                               settings_hash, write_json)
from nbcode.data import DataMissingError, ImageData, batch_indices, dataset_name, ensure_downloaded, load_for_profile
from nbcode.gan import LATENT, Discriminator, Generator, to_gan_range
from nbcode.losses import aw_discriminator_backward, hinge_fake, hinge_generator, hinge_real
from nbcode.precision import autocast, precision_name, training_dtype
from nbcode.profiles import PROFILES, Profile, get_profile, pick_device
from nbcode.resnet import count_parameters

GRID_CLASSES = 10  # rows of the fixed sample grid
GRID_PER_CLASS = 8


class GANDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass(frozen=True)
class GANSettings:
    """How to train the GAN (the budgets come from the profile).

    Attributes:
        loss: "aw" (adaptive-weighted discriminator loss, normalised) or "hinge" (plain sum).
        conditional: class-conditional (CBN + projection) or unconditional.
        lr: Adam learning rate of both networks, with betas (0, 0.9). The paper gives no optimiser
            settings for its GAN; these are SN-GAN practice (Miyato et al., 2018, lr 2e-4, betas (0, 0.9)).
        ema: decay of the exponential moving average of the generator's weights (0: none, the
            average then equals the generator).
    """

    loss: str = "aw"
    conditional: bool = True
    lr: float = 2e-4
    ema: float = 0.999


def run_name(settings: GANSettings, train: ImageData, profile: Profile, seed: int, dtype: torch.dtype) -> str:
    """The folder name of a run: a readable part, then a hash of everything that determines its
    result (every setting, the training data actually loaded, the budgets, the seed, the precision)."""
    key = {"settings": asdict(settings), "seed": seed, "precision": precision_name(dtype),
           "budgets": {name: getattr(profile, name) for name in ("train_limit", "gan_iterations", "gan_batch")},
           "data": [train.name, train.split, train.verified, len(train), train.fingerprint()]}
    kind = "conditional" if settings.conditional else "unconditional"
    return (f"gan-{kind}-{settings.loss}-{train.name}-{profile.name}-{profile.gan_iterations}x{profile.gan_batch}-"
            f"seed{seed}-{precision_name(dtype)}-{settings_hash(key)}")


def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for parameters; buffers (BN statistics) are copied."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def build_gan(num_classes: int, lr: float, device: torch.device | str = "cpu"
              ) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    """A fresh generator and discriminator with their Adam optimisers (betas (0, 0.9): SN-GAN practice,
    Miyato et al., 2018; the paper states no GAN optimiser settings).

    Both networks are stored channels_last (NHWC): on a CPU their convolutions then take oneDNN's
    fast path, about 15% faster per iteration at batch 64 (benchmarks/gan_step.py). Feed the
    discriminator real images in the same layout: `x.contiguous(memory_format=torch.channels_last)`.
    """
    g = Generator(num_classes).to(device, memory_format=torch.channels_last)
    d = Discriminator(num_classes).to(device, memory_format=torch.channels_last)
    g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.0, 0.9))
    return g, d, g_opt, d_opt


def gan_iteration(g: Generator, d: Discriminator, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer,
                  real: torch.Tensor, labels: torch.Tensor | None, loss: str, rng: torch.Generator,
                  dtype: torch.dtype = torch.float32) -> dict:
    """One discriminator update, then one generator update, sharing one generated batch.

    As in PyTorch's DCGAN example, the generated images are made once: the discriminator learns
    from them detached, then the generator's loss (eq. 5) back-propagates through the same
    forward pass, which the discriminator update has not touched. The discriminator scores real
    and generated images in separate calls, so that the aw rule differentiates each loss through
    its own half of the batch only, but with one set of spectrally normalised weights
    (`parametrize.cached`): both halves see the same function, and the power iteration advances
    once per iteration, in the discriminator update, as in Miyato et al.'s Algorithm 1. For the
    generator's step the discriminator is frozen: no gradients for its parameters, and in eval
    mode, so its spectral norms reuse u and v instead of iterating again. With `dtype` bfloat16
    the convolutions and matrix products run under bf16 autocast (nbcode.precision); weights,
    optimiser states, the power iteration and the losses stay fp32.

    Args:
        real: (B, 3, 32, 32) in [-1, 1]; labels: (B,) int64, or None for an unconditional GAN.
        loss: "aw" (aw_discriminator_backward) or "hinge" (backward of L_r + L_f).
    Returns:
        {"d_loss", "g_loss", "real_score", "fake_score"} and, for aw, {"w_real", "w_fake", "case"}.
    """
    batch = len(real)
    fake_labels = None if labels is None else torch.randint(0, d.num_classes, (batch,), generator=rng,
                                                            device=real.device)
    z = torch.randn(batch, LATENT, generator=rng, device=real.device)
    with autocast(real.device, dtype):
        fake = g(z, fake_labels)
    with parametrize.cached(), autocast(real.device, dtype):  # one power iteration for both calls
        real_out, fake_out = d(real, labels).float(), d(fake.detach(), fake_labels).float()
        loss_real, loss_fake = hinge_real(real_out), hinge_fake(fake_out)
        stats = {"d_loss": (loss_real + loss_fake).item(),
                 "real_score": torch.sigmoid(real_out.detach()).mean().item(),
                 "fake_score": torch.sigmoid(fake_out.detach()).mean().item()}
        if loss == "aw":
            weights = aw_discriminator_backward(d, real_out, fake_out, loss_real, loss_fake)
            stats.update(w_real=weights.w_real, w_fake=weights.w_fake, case=weights.case)
        else:
            d_opt.zero_grad(set_to_none=True)
            (loss_real + loss_fake).backward()
    d_opt.step()

    d.requires_grad_(False).eval()  # frozen: no parameter gradients, no power-iteration step
    with autocast(real.device, dtype):
        g_loss = hinge_generator(d(fake, fake_labels).float())
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    d.requires_grad_(True).train()
    return stats | {"g_loss": g_loss.item()}


def train_gan(settings: GANSettings, profile: Profile, *, dataset: str | None = None, seed: int = 0,
              runs_dir: str | Path | None = None, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train G and D for `profile.gan_iterations` generator steps, or return the cached record.

    Each iteration is `gan_iteration`: one discriminator step (aw or hinge loss), then one
    generator step (eq. 5), on one batch of real images and one generated batch.

    Returns:
        The run record (also metrics.json): settings, parameter counts, and per-iteration logs of
        the losses, mean sigmoid scores, and for aw the weights and the case that fired.
    """
    keep_freed_memory()  # large freed blocks reused instead of page-faulted (nbcode.allocator)
    train, folder, dtype = _data_and_folder(settings, profile, dataset, seed, runs_dir)
    with run_lock(folder):  # a second process asking for this run waits, then reads the result
        record = _finished_record(folder, profile)
        if record is not None:
            return record
        return _train_gan_locked(settings, profile, train, seed, dtype, folder, progress, stop_after)


def is_trained(settings: GANSettings, profile: Profile, *, dataset: str | None = None, seed: int = 0,
               runs_dir: str | Path | None = None) -> bool:
    """True when `train_gan` with these arguments would load a finished run instead of training."""
    _, folder, _ = _data_and_folder(settings, profile, dataset, seed, runs_dir)
    return _finished_record(folder, profile) is not None


def _finished_record(folder: Path, profile: Profile) -> dict | None:
    """The record in `folder` when it holds a run finished at `profile`'s budget, else None."""
    record = read_record(folder / "metrics.json")
    return record if record is not None and record.get("step") == profile.gan_iterations else None


def _data_and_folder(settings: GANSettings, profile: Profile, dataset: str | None, seed: int,
                     runs_dir: str | Path | None) -> tuple[ImageData, Path, torch.dtype]:
    """The training split a run uses, its run folder and its training precision (nbcode.precision)."""
    if settings.loss not in ("aw", "hinge"):
        raise ValueError(f"unknown GAN loss {settings.loss!r}; valid: aw, hinge")
    train = load_for_profile(profile, "train", dataset_name(dataset))
    dtype = training_dtype(pick_device())
    return train, runs_root(runs_dir) / "gan" / run_name(settings, train, profile, seed, dtype), dtype


def _train_gan_locked(settings: GANSettings, profile: Profile, train: ImageData, seed: int, dtype: torch.dtype,
                      folder: Path, progress: bool, stop_after: int | None) -> dict:
    """The body of train_gan, run while holding the run folder's lock."""
    metrics_path, checkpoint_path = folder / "metrics.json", folder / "checkpoint.pt"
    total = profile.gan_iterations
    device = pick_device()
    num_classes = len(train.classes) if settings.conditional else 0
    images, labels = train.images.to(device), train.labels.to(device)
    torch.manual_seed(seed)
    g, d, g_opt, d_opt = build_gan(num_classes, settings.lr, device)
    g_ema = copy.deepcopy(g).eval()  # the average starts as the generator itself
    architecture = f"SNGAN(classes={num_classes})"
    done, log = 0, {"d_loss": [], "g_loss": [], "real_score": [], "fake_score": [], "w_real": [], "w_fake": [],
                    "case": []}
    parts = ("g", "d", "g_ema", "g_opt", "d_opt")
    seconds = 0.0
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, architecture, device, keys=("step", "log", "seconds", *parts))
        for module, key in zip((g, d, g_ema, g_opt, d_opt), parts):
            module.load_state_dict(state[key])
        done, log, seconds = state["step"], state["log"], state["seconds"]

    fixed = torch.Generator().manual_seed(12345)
    grid_z = torch.randn(GRID_CLASSES * GRID_PER_CLASS, LATENT, generator=fixed).to(device)
    grid_y = (torch.arange(GRID_CLASSES).repeat_interleave(GRID_PER_CLASS) * max(1, num_classes // GRID_CLASSES)
              ).to(device) if num_classes else None
    record = {"kind": "gan", "run": folder.name, "architecture": architecture, "settings": asdict(settings),
              "parameters": {"generator": count_parameters(g), "discriminator": count_parameters(d)},
              "profile": profile.name, "iterations": total, "batch": profile.gan_batch, "seed": seed,
              "precision": precision_name(dtype),
              "dataset": train.name, "data": train.describe(), "classes": train.classes, "device": str(device),
              "commit": git_commit(), "grid_labels": None if grid_y is None else grid_y.tolist()}
    last = min(total, stop_after) if stop_after is not None else total
    batch = profile.gan_batch
    every = max(1, total // 10)  # sample grids and checkpoints ten times per run
    started, seconds_before = time.perf_counter(), seconds
    for step in tqdm(range(done, last), initial=done, total=total, desc=folder.name, disable=not progress):
        rng = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
        index = batch_indices(len(labels), batch, step, seed).to(device)
        real = to_gan_range(images[index])
        real = torch.where(torch.rand(batch, 1, 1, 1, generator=rng, device=device) < 0.5, real.flip(3), real)
        real = real.contiguous(memory_format=torch.channels_last)  # the layout of build_gan's networks
        stats = gan_iteration(g, d, g_opt, d_opt, real, labels[index] if num_classes else None, settings.loss, rng,
                              dtype)
        update_ema(g_ema, g, min(settings.ema, (1 + step) / (10 + step)))  # short warm-up of the average

        if not (math.isfinite(stats["d_loss"]) and math.isfinite(stats["g_loss"])):
            raise GANDivergedError(
                f"training diverged at iteration {step + 1}: D loss {stats['d_loss']}, G loss {stats['g_loss']}. "
                f"The last good checkpoint is kept in {checkpoint_path}; lower the learning rate "
                f"(GANSettings(lr=...), or --lr on the command line) or change the seed: either makes a new run. "
                f"Delete the folder to start this one over.")
        for key, value in stats.items():
            log[key].append(value)
        done = step + 1
        if done % every == 0 or done == total:
            with torch.no_grad():
                save_image(g_ema(grid_z, grid_y).add(1).div(2), folder / f"samples_{done:06d}.png", nrow=GRID_PER_CLASS)
        if done % every == 0 or done == total or done == last:
            seconds = seconds_before + time.perf_counter() - started
            save_checkpoint(checkpoint_path, {"architecture": architecture, "step": done, "log": log,
                                              "seconds": seconds, "g": g.state_dict(), "d": d.state_dict(),
                                              "g_ema": g_ema.state_dict(), "g_opt": g_opt.state_dict(),
                                              "d_opt": d_opt.state_dict()})
            record.update(step=done, log=log, train_seconds=seconds)
            write_json(metrics_path, record)  # progress a reader can follow; complete once done == total
    # Whatever the loop did (nothing, when the checkpoint already held the last step asked for),
    # the record ends complete, consistent with the checkpoint, and on disk.
    record.update(step=done, log=log, train_seconds=seconds)
    write_json(metrics_path, record)
    return record


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
                           ema: bool = True) -> Generator:
    """The trained generator of a GAN run record (the EMA copy by default), in eval mode."""
    state = load_checkpoint(runs_root(runs_dir) / "gan" / record["run"] / "checkpoint.pt", record["architecture"],
                            device)
    g = Generator(len(record["classes"]) if record["settings"]["conditional"] else 0)
    g.load_state_dict(state["g_ema" if ema else "g"])
    return g.to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.gan_train", description="Train the SN-GAN headless.")
    parser.add_argument("--profile", choices=list(PROFILES), default=None, help="default: $NBCODE_PROFILE or quick")
    parser.add_argument("--loss", choices=["aw", "hinge"], default="aw")
    parser.add_argument("--unconditional", action="store_true")
    parser.add_argument("--lr", type=float, default=GANSettings.lr, help="Adam learning rate of G and D")
    parser.add_argument("--ema", type=float, default=GANSettings.ema, help="decay of the generator's average")
    parser.add_argument("--dataset", choices=["cifar100", "cifar10", "synthetic"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default=None, help="default: $NBCODE_RUNS or ~/.cache/nbcode/runs")
    args = parser.parse_args()
    settings = GANSettings(loss=args.loss, conditional=not args.unconditional, lr=args.lr, ema=args.ema)
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
