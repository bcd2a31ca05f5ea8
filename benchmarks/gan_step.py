"""GAN iteration time: nbcode's step against a reference step built the common way.

- reference: the same Generator and Discriminator architecture, with spectral norm from
  `torch.nn.utils.spectral_norm` (forward pre-hooks), the discriminator called separately on
  real and on generated images, NCHW;
- nbcode: the networks of `nbcode.runs.gan.build_gan` (channels_last) and its `gan_iteration`:
  its own spectral-norm parametrisation, one generated batch shared by the discriminator and
  generator updates, discriminator frozen during the generator's backward; timed in fp32 and,
  where the CPU does bf16 arithmetic (nbcode.runs.precision), under bf16 autocast as `train_gan` runs it,
  after `nbcode.runs.allocator.keep_freed_memory()` as `train_gan` calls it.

Both use the adaptive-weighted discriminator loss and the hinge generator loss, Adam (2e-4,
betas (0, 0.9)), batch 64, the same images.

    python benchmarks/gan_step.py [--steps 20] [--batch-size 64]

Runs the reference `--steps` times with PyTorch's and glibc's defaults, then (the allocator
setting is process-wide) one nbcode iteration of each precision in turn, `--steps` rounds, and
prints the median milliseconds per iteration of each, and last the ratio of the reference to the
precision `train_gan` uses here (bar: >= 1.5x on this CPU).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.utils import spectral_norm as hook_spectral_norm

from nbcode.data.datasets import make_synthetic
from nbcode.gan import LATENT, Discriminator, Generator, to_gan_range
from nbcode.gan_recipe import build_gan, gan_iteration
from nbcode.losses import aw_discriminator_backward, hinge_fake, hinge_generator, hinge_real
from nbcode.runs.allocator import keep_freed_memory
from nbcode.runs.precision import bf16_is_fast, precision_name, training_dtype


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


def interleaved_medians(steps: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call of each step, calling them in turn for `rounds` rounds (after one
    warm-up call each), so that a slow spell of the machine hits every contender alike."""
    times = {name: [] for name in steps}
    for name, step in steps.items():
        step()
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    data = make_synthetic("train", n=2048)
    real = to_gan_range(data.images[:args.batch_size])
    labels = data.labels[:args.batch_size]
    print(f"conditional SN-GAN (942,612 parameters), aw loss, batch {args.batch_size}, {args.steps} rounds, "
          f"the reference first, then nbcode's precisions in turn; medians, cpu, "
          f"{torch.get_num_threads()} torch threads")

    torch.manual_seed(0)
    g, d = Generator(), Discriminator(sn=hook_spectral_norm)
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
    reference_rng = torch.Generator().manual_seed(0)

    real_nhwc = real.contiguous(memory_format=torch.channels_last)
    timings = interleaved_medians(
        {"reference": lambda: reference_iteration(g, d, g_opt, d_opt, real, labels, reference_rng)}, args.steps)

    keep_freed_memory()  # as train_gan does
    steps = {}
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_is_fast(torch.device("cpu")) else [])
    for dtype in dtypes:
        torch.manual_seed(0)
        nets, rng = build_gan(100, 2e-4), torch.Generator().manual_seed(0)
        steps[precision_name(dtype)] = (lambda nets=nets, rng=rng, dtype=dtype:
                                        gan_iteration(*nets, real_nhwc, labels, "aw", rng, dtype))

    timings.update(interleaved_medians(steps, args.steps))
    print(f"{'reference (SN hooks, separate G calls), fp32':<46} {1000 * timings['reference']:8.1f} ms/iteration")
    for dtype in dtypes:
        name = precision_name(dtype)
        print(f"{'nbcode (shared fake, frozen D, NHWC), ' + name:<46} {1000 * timings[name]:8.1f} ms/iteration "
              f"({timings['reference'] / timings[name]:.2f}x)")
    used = precision_name(training_dtype(torch.device("cpu")))
    print(f"ratio: {timings['reference'] / timings[used]:.2f}x  (nbcode in {used}, as train_gan runs here; "
          f"bar: >= 1.5x)")


if __name__ == "__main__":
    main()
