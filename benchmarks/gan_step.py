"""GAN iteration time: nbcode's step against a reference step built the common way.

- reference: the same Generator and Discriminator architecture, with spectral norm from
  `torch.nn.utils.spectral_norm` (forward pre-hooks), the discriminator called separately on
  real and on generated images, NCHW;
- nbcode: `nbcode.gan_train.gan_iteration`: its own spectral-norm parametrisation, one generated
  batch shared by the discriminator and generator updates, discriminator frozen during the
  generator's backward.

Both use the adaptive-weighted discriminator loss and the hinge generator loss, Adam (2e-4,
betas (0, 0.9)), batch 64, the same images.

    python benchmarks/gan_step.py [--steps 20] [--batch-size 64]

Prints seconds per iteration of each and the ratio (bar: >= 1.3x on this CPU).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.nn.utils import spectral_norm as hook_spectral_norm

from nbcode.data import make_synthetic
from nbcode.gan import LATENT, Discriminator, Generator
from nbcode.gan_train import gan_iteration, to_gan_range
from nbcode.losses import aw_discriminator_backward, hinge_fake, hinge_generator, hinge_real


def reference_iteration(g, d, g_opt, d_opt, real, labels, rng) -> None:
    """One iteration as commonly written: separate D calls for real and fake."""
    batch = len(real)
    fake_labels = torch.randint(0, 100, (batch,), generator=rng)
    with torch.no_grad():
        fake = g(torch.randn(batch, LATENT, generator=rng), fake_labels)
    real_out, fake_out = d(real, labels), d(fake, fake_labels)
    aw_discriminator_backward(d, real_out, fake_out, hinge_real(real_out), hinge_fake(fake_out))
    d_opt.step()
    gen_labels = torch.randint(0, 100, (batch,), generator=rng)
    loss = hinge_generator(d(g(torch.randn(batch, LATENT, generator=rng), gen_labels), gen_labels))
    g_opt.zero_grad()
    loss.backward()
    g_opt.step()


def seconds_per_iteration(step, steps: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    data = make_synthetic("train", n=2048)
    real = to_gan_range(data.images[:args.batch_size])
    labels = data.labels[:args.batch_size]
    print(f"conditional SN-GAN (942,612 parameters), aw loss, batch {args.batch_size}, {args.steps} timed "
          f"iterations each, cpu, {torch.get_num_threads()} torch threads")

    timings = {}
    for name, sn in (("reference", hook_spectral_norm), ("nbcode", None)):
        torch.manual_seed(0)
        g = Generator()
        d = Discriminator(sn=sn) if sn else Discriminator()
        g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.0, 0.9))
        d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
        rng = torch.Generator().manual_seed(0)
        if name == "reference":
            step = lambda: reference_iteration(g, d, g_opt, d_opt, real, labels, rng)  # noqa: E731
        else:
            step = lambda: gan_iteration(g, d, g_opt, d_opt, real, labels, "aw", rng)  # noqa: E731
        timings[name] = seconds_per_iteration(step, args.steps)

    print(f"reference (SN hooks, separate G calls):  {1000 * timings['reference']:8.1f} ms/iteration")
    print(f"nbcode (shared fake batch, frozen D):    {1000 * timings['nbcode']:8.1f} ms/iteration")
    print(f"ratio: {timings['reference'] / timings['nbcode']:.2f}x  (bar: >= 1.3x)")


if __name__ == "__main__":
    main()
