"""How the conditional SN-GAN is trained: its settings (the paper's recipe and ours), the two
optimisers, the discriminator and generator updates (the paper's eqs. 4-6) and the generator's
moving average. torch and the standard library only: copy this file with gan.py, sle_gan.py,
losses.py, normalization.py, projection.py, diff_augment.py and augment.py.

    settings = GAN_RECIPES["improved"]
    g, d, g_opt, d_opt = build_gan(num_classes=100, lr=settings.lr, lr_d=settings.lr_d)
    stats = gan_iteration(g, d, g_opt, d_opt, real, labels, loss="aw", rng=rng, augment=settings.augment)
    update_ema(g_ema, g, decay=0.999)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.utils import parametrize

from nbcode.diff_augment import check_policy, diff_augment
from nbcode.gan import Discriminator, Generator
from nbcode.losses import aw_discriminator_backward, hinge_fake, hinge_generator, hinge_real
from nbcode.sle_gan import SLEGenerator

LOSSES = ("aw", "hinge")
GENERATORS = {"table1": Generator, "sle": SLEGenerator}  # the paper's; chapter 8's SLE + separable convs


def check_loss(loss: str) -> None:
    """Raise a ValueError naming the valid losses unless `loss` is one of LOSSES."""
    if loss not in LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}; valid: {', '.join(LOSSES)}")


@dataclass(frozen=True)
class GANSettings:
    """How to train the GAN (the budgets come from the profile); the defaults are the paper's recipe.

    Attributes:
        loss: "aw" (adaptive-weighted discriminator loss, normalised) or "hinge" (plain sum).
        conditional: class-conditional (CBN + projection) or unconditional.
        name: "paper", "improved" or an ablation's name (GAN_RECIPES, gan_ablations).
        lr: Adam learning rate of the generator, and of the discriminator unless `lr_d` is set, with
            betas (0, 0.9). The paper gives no optimiser settings for its GAN; these are SN-GAN
            practice (Miyato et al., 2018, lr 2e-4, betas (0, 0.9)).
        lr_d: the discriminator's own learning rate (two time-scale update rule, Heusel et al.,
            2017), or None: the same as `lr`.
        ema: decay of the exponential moving average of the generator's weights, in [0, 1)
            (0: none, the average then equals the generator).
        augment: DiffAugment operations applied to every image D sees, real and generated
            (nbcode.diff_augment; Zhao et al., 2020); () for none.
        generator: "table1" (the paper's, nbcode.gan) or "sle" (skip-layer excitation and
            separable convs, nbcode.sle_gan); both train against Table 1's discriminator.
        lr_decay: both learning rates fall linearly from their value at the first iteration to 0
            after the last (`scheduled_rates`), as in Miyato & Koyama's projection-discriminator
            runs (2018) and Mimicry's SN-GAN baselines (Lee & Town, 2020); False: constant rates.
    """

    loss: str = "aw"
    conditional: bool = True
    name: str = "paper"
    lr: float = 2e-4
    lr_d: float | None = None
    ema: float = 0.999
    augment: tuple[str, ...] = ()
    generator: str = "table1"
    lr_decay: bool = False

    def __post_init__(self) -> None:
        check_loss(self.loss)
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; valid: {', '.join(GENERATORS)}")
        for rate in (self.lr, self.lr if self.lr_d is None else self.lr_d):
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"a learning rate must be a finite number > 0, got {rate}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"the EMA decay must lie in [0, 1), got {self.ema}")
        check_policy(self.augment)


GAN_RECIPES = {
    "paper": GANSettings(),
    # Chosen on the CIFAR-10 copy by FID and KID against training images and by GAN-test accuracy
    # (benchmarks/gan_levers.py): the discriminator at twice the generator's rate, the generator at
    # twice SN-GAN's (more samples recognisable as their class and a lower FID than at 2e-4). No
    # DiffAugment: at these rates and 6,000 iterations, more samples were recognisable without it
    # at two seeds (FID lower at one seed, higher at the other).
    "improved": GANSettings(name="improved", lr=4e-4, lr_d=8e-4),
}


def gan_ablations(settings: GANSettings = GAN_RECIPES["improved"]) -> dict[str, GANSettings]:
    """The improved recipe with one of its changes undone at a time (back to the paper's
    setting), keyed by the change that is missing:

        "two time-scale rates"  -> D at the generator's rate
        "faster generator"      -> G at the paper's rate (D keeps its own)
    """
    paper = GAN_RECIPES["paper"]
    return {"two time-scale rates": replace(settings, name=f"{settings.name}-no-ttur", lr_d=paper.lr_d),
            "faster generator": replace(settings, name=f"{settings.name}-paper-g-rate", lr=paper.lr)}


def build_gan(num_classes: int, lr: float, device: torch.device | str = "cpu", lr_d: float | None = None,
              generator: str = "table1") -> tuple[nn.Module, Discriminator, torch.optim.Adam, torch.optim.Adam]:
    """A fresh generator (GENERATORS[generator]: Table 1's by default) and Table 1's discriminator
    with their Adam optimisers (betas (0, 0.9): SN-GAN practice, Miyato et al., 2018; the paper
    states no GAN optimiser settings): G at `lr`, D at `lr_d` (None: also `lr`).

    Both networks are stored channels_last (NHWC): on a CPU their convolutions then take oneDNN's
    fast path, about 15% faster per iteration at batch 64 (benchmarks/gan_step.py). Feed the
    discriminator real images in the same layout: `x.contiguous(memory_format=torch.channels_last)`.
    """
    g = GENERATORS[generator](num_classes).to(device, memory_format=torch.channels_last)
    d = Discriminator(num_classes).to(device, memory_format=torch.channels_last)
    g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), lr=lr if lr_d is None else lr_d, betas=(0.0, 0.9))
    return g, d, g_opt, d_opt


def scheduled_rates(settings: GANSettings, step: int, total: int) -> tuple[float, float]:
    """The generator's and the discriminator's learning rates at iteration `step` (0-based) of a
    run of `total` iterations: constant, or with `settings.lr_decay` falling linearly to 0."""
    scale = 1 - step / total if settings.lr_decay else 1.0
    return settings.lr * scale, (settings.lr if settings.lr_d is None else settings.lr_d) * scale


def set_rates(g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer, rates: tuple[float, float]) -> None:
    """Give every parameter group of G's and D's optimisers its rate from `scheduled_rates`."""
    for optimiser, rate in zip((g_opt, d_opt), rates):
        for group in optimiser.param_groups:
            group["lr"] = rate


def update_discriminator(d: Discriminator, d_opt: torch.optim.Optimizer, real: torch.Tensor,
                         real_labels: torch.Tensor | None, fake: torch.Tensor, fake_labels: torch.Tensor | None,
                         loss: str, dtype: torch.dtype = torch.float32) -> dict:
    """One discriminator step on a real and a generated batch (the generated one is detached).

    Real and generated images go through D in separate calls, so that the aw rule differentiates
    each loss through its own half only, but with one set of spectrally normalised weights
    (`parametrize.cached`): one power iteration per step, as in Miyato et al.'s Algorithm 1.

    Args:
        real, fake: (B, 3, 32, 32) in [-1, 1]; labels: (B,) int64, or None if unconditional.
        loss: "aw" (eq. 6) or "hinge" (the plain sum L_r + L_f).
    Returns:
        {"d_loss", "real_score", "fake_score"} and, for aw, {"w_real", "w_fake", "case"}.
    """
    check_loss(loss)
    with parametrize.cached(), torch.autocast(real.device.type, torch.bfloat16, enabled=dtype == torch.bfloat16):
        real_out, fake_out = d(real, real_labels).float(), d(fake.detach(), fake_labels).float()
        # Eq. (4) as printed, E[min(0, -1 + D(x))] + E[min(0, -1 - D(G(z)))], is what D maximises
        # (it reads as a loss, but its sign is flipped); D minimises its negative, L_r + L_f:
        loss_real = hinge_real(real_out)  # L_r = E[max(0, 1 - D(x))]
        loss_fake = hinge_fake(fake_out)  # L_f = E[max(0, 1 + D(G(z)))]
        d_loss = (loss_real + loss_fake).detach()
        if loss == "aw":  # eq. (6): .grad = w_r * grad L_r + w_f * grad L_f; the rule computed rs and fs
            weights = aw_discriminator_backward(d, real_out, fake_out, loss_real, loss_fake)
            stats = {"d_loss": d_loss.item(), "real_score": weights.real_score, "fake_score": weights.fake_score,
                     "w_real": weights.w_real, "w_fake": weights.w_fake, "case": weights.case}
        else:  # the hinge loss: .grad = grad (L_r + L_f)
            d_opt.zero_grad(set_to_none=True)
            (loss_real + loss_fake).backward()
            scores = torch.sigmoid(torch.stack([real_out.detach(), fake_out.detach()])).mean(1)  # rs, fs
            # the three logged numbers come to the host in one transfer (one wait for a GPU, not three)
            d_loss, real_score, fake_score = torch.cat([d_loss.view(1), scores]).tolist()
            stats = {"d_loss": d_loss, "real_score": real_score, "fake_score": fake_score}
    d_opt.step()
    return stats


def update_generator(g_opt: torch.optim.Optimizer, d: Discriminator, fake: torch.Tensor,
                     fake_labels: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> float:
    """One generator step: L_G = -E[D(G(z))], eq. (5), back-propagated through `fake`, the
    generator's output (not detached). D is frozen meanwhile: no gradients for its parameters,
    and eval mode, so its spectral norms reuse u and v instead of iterating again.
    Returns L_G."""
    d.requires_grad_(False).eval()
    with torch.autocast(fake.device.type, torch.bfloat16, enabled=dtype == torch.bfloat16):
        g_loss = hinge_generator(d(fake, fake_labels).float())  # eq. (5)
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    d.requires_grad_(True).train()
    return g_loss.item()


def gan_iteration(g: Generator, d: Discriminator, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer,
                  real: torch.Tensor, labels: torch.Tensor | None, loss: str, rng: torch.Generator,
                  dtype: torch.dtype = torch.float32, augment: tuple[str, ...] = ()) -> dict:
    """One discriminator update, then one generator update, sharing one generated batch.

    As in PyTorch's DCGAN example, the images are generated once: D learns from them detached,
    then G's loss back-propagates through the same forward pass. With `dtype` bfloat16 the
    convolutions and matrix products run under bf16 autocast; weights, optimiser states, the
    power iteration and the losses stay fp32. With an `augment` policy, D sees every image, real
    and generated, through DiffAugment; G's loss back-propagates through the augmentation.

    Args:
        real: (B, 3, 32, 32) in [-1, 1]; labels: (B,) int64, or None for an unconditional GAN.
        loss: "aw" or "hinge"; rng: draws the noise z (g.latent values per image), the fake
            labels and the augmentations.
    Returns:
        The discriminator's statistics (`update_discriminator`) and "g_loss".
    """
    check_loss(loss)
    batch, device = len(real), real.device
    fake_labels = None if labels is None else torch.randint(0, d.num_classes, (batch,), generator=rng, device=device)
    z = torch.randn(batch, g.latent, generator=rng, device=device)
    with torch.autocast(device.type, torch.bfloat16, enabled=dtype == torch.bfloat16):
        fake = g(z, fake_labels)
    if augment:  # one augmentation of each batch, differentiable: both updates see the same images
        real, fake = diff_augment(real, augment, rng), diff_augment(fake, augment, rng)
    stats = update_discriminator(d, d_opt, real, labels, fake, fake_labels, loss, dtype)
    return stats | {"g_loss": update_generator(g_opt, d, fake, fake_labels, dtype)}


def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for parameters; buffers (BN statistics) are copied."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)
