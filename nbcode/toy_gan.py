"""A GAN on a 2-D ring of Gaussians: small enough to train in seconds on a CPU, and mode collapse
is visible by eye. Used to compare the plain hinge loss with the adaptive-weighted one.

    run = train_toy_gan("aw", steps=2000, seed=0)
    modes, quality = mode_coverage(run.samples)
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nbcode.losses import aw_discriminator_backward, hinge_fake, hinge_generator, hinge_real
from nbcode.normalization import spectral_norm

MODES = 8
RADIUS = 2.0
MODE_STD = 0.05
LATENT = 16
LOSSES = ("hinge", "aw")


def ring_centres(modes: int = MODES, radius: float = RADIUS) -> torch.Tensor:
    """(modes, 2) centres spaced evenly on a circle."""
    angles = torch.arange(modes) * (2 * math.pi / modes)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def sample_ring(n: int, generator: torch.Generator, std: float = MODE_STD) -> torch.Tensor:
    """(n, 2) points: a random centre of the ring plus Gaussian noise of `std`."""
    centres = ring_centres()
    which = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[which] + std * torch.randn(n, 2, generator=generator)


def toy_generator(hidden: int = 128) -> nn.Module:
    """z (B, 16) -> point (B, 2)."""
    return nn.Sequential(nn.Linear(LATENT, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 2))


def toy_discriminator(hidden: int = 128) -> nn.Module:
    """point (B, 2) -> raw score (B, 1); every layer spectrally normalised."""
    return nn.Sequential(spectral_norm(nn.Linear(2, hidden)), nn.LeakyReLU(0.1),
                         spectral_norm(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.1),
                         spectral_norm(nn.Linear(hidden, 1)))


@dataclass
class ToyRun:
    """What one toy training run leaves behind.

    Attributes:
        loss: "hinge" or "aw".
        seed: the seed of weights, noise and data.
        samples: (n, 2) generator samples after training.
        cases: the aw case that fired at each discriminator step (empty for hinge).
        w_real, w_fake: the aw weights at each step (empty for hinge).
    """

    loss: str
    seed: int
    samples: torch.Tensor
    cases: list[str] = field(default_factory=list)
    w_real: list[float] = field(default_factory=list)
    w_fake: list[float] = field(default_factory=list)

    def case_counts(self) -> Counter:
        return Counter(self.cases)


def toy_discriminator_backward(d: nn.Module, d_opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor,
                               run: ToyRun) -> None:
    """Set D's gradients for one step on real and generated points, (B, 2) each, scored in one
    call: by the aw rule when `run.loss` is "aw" (its case and weights are appended to `run`),
    else by the plain hinge sum L_r + L_f."""
    out = d(torch.cat([real, fake])).squeeze(1)
    real_out, fake_out = out[:len(real)], out[len(real):]
    if run.loss == "aw":
        weights = aw_discriminator_backward(d, real_out, fake_out, hinge_real(real_out), hinge_fake(fake_out))
        run.cases.append(weights.case)
        run.w_real.append(weights.w_real)
        run.w_fake.append(weights.w_fake)
    else:
        d_opt.zero_grad()
        (hinge_real(real_out) + hinge_fake(fake_out)).backward()


def train_toy_gan(loss: str, steps: int, seed: int, batch: int = 256, lr: float = 1e-3,
                  n_samples: int = 2000,
                  on_d_backward: Callable[[int, nn.Module], None] | None = None) -> ToyRun:
    """Train G and D on the ring with the hinge loss ("hinge") or the aw loss ("aw").

    One discriminator step, then one generator step, per iteration; Adam with betas (0, 0.9) for
    both (SN-GAN practice, Miyato et al., 2018; the paper states no GAN optimiser settings). D sees
    real and generated points in one call. For the generator's step D is frozen and in eval mode,
    so its spectral norms reuse u and v: the power iteration advances once per iteration, in the
    discriminator's step, as in `nbcode.gan_recipe.gan_iteration`.
    `on_d_backward(step, d)`, if given, runs after each discriminator backward pass, before its
    optimiser step: the moment to inspect D's gradients or spectral-norm estimates.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    g, d = toy_generator(), toy_discriminator()
    g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.0, 0.9))
    run = ToyRun(loss, seed, torch.empty(0, 2))
    for step in range(steps):
        toy_discriminator_backward(d, d_opt, sample_ring(batch, data), g(torch.randn(batch, LATENT)).detach(), run)
        if on_d_backward is not None:
            on_d_backward(step, d)
        d_opt.step()

        d.requires_grad_(False).eval()  # frozen: no parameter gradients, no power-iteration step
        g_opt.zero_grad()
        hinge_generator(d(g(torch.randn(batch, LATENT))).squeeze(1)).backward()
        g_opt.step()
        d.requires_grad_(True).train()
    with torch.no_grad():
        run.samples = g(torch.randn(n_samples, LATENT, generator=torch.Generator().manual_seed(seed + 1)))
    return run


def mode_coverage(samples: torch.Tensor, std: float = MODE_STD) -> tuple[int, float]:
    """How many of the ring's modes the samples cover, and what share of samples is high quality.

    A sample is high quality when it lies within 3 std of its nearest centre; a mode is covered
    when at least 1% of the samples are high quality and nearest to it (the usual 2-D GAN metric).

    Args:
        samples: (n, 2) points.
    Returns:
        (modes covered out of 8, fraction of high-quality samples in [0, 1]).
    """
    distances = torch.cdist(samples, ring_centres())  # (n, modes)
    nearest, which = distances.min(dim=1)
    good = nearest < 3 * std
    per_mode = torch.bincount(which[good], minlength=MODES)
    return int((per_mode >= 0.01 * len(samples)).sum()), good.float().mean().item()
