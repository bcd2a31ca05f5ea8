# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. The adaptive-weighted discriminator loss
#
# **Question.** The paper trains its discriminator with $L^D_{aw} = w_r L_r + w_f L_f$ (eq. 6),
# with weights chosen at every step by the rule of Zadorozhnyy, Cheng & Ye (CVPR 2021). Why would
# the plain sum $L_r + L_f$ be a problem, what does the rule do geometrically, and does it help
# on a GAN small enough to train here in a minute?

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from nbcode.book.display import print_warnings_as_notes, show_source
from nbcode.book.plots import moving_average, smoothing_window
from nbcode.book.verdicts import coverage_verdict
from nbcode.losses import (
    ALPHA1,
    ALPHA2,
    AW_CASES,
    DELTA,
    EPSILON,
    adaptive_weights,
    aw_discriminator_backward,
)
from nbcode.runs.profiles import describe, get_profile, pick_device
from nbcode.toy_gan import mode_coverage, ring_centres, train_toy_gan

torch.manual_seed(0)
print_warnings_as_notes()  # notices as plain lines, without the paths of this machine
profile = get_profile()
device = pick_device()
print(describe(profile, device))

# %% [markdown]
# ## Two losses that can fight
#
# The hinge discriminator loss is the sum of a real part and a fake part,
# $L_r = \mathbb{E}[\max(0, 1 - D(x))]$ and $L_f = \mathbb{E}[\max(0, 1 + D(G(z)))]$. Let $g_r$
# and $g_f$ be their gradients with respect to all discriminator parameters, flattened into
# one vector each. A gradient step on the sum moves by $-\eta(g_r + g_f)$, and to first order
# changes $L_r$ by
#
# $$\Delta L_r \approx -\eta\, g_r^\top (g_r + g_f) = -\eta\,(\|g_r\|^2 + g_r^\top g_f).$$
#
# When $g_r^\top g_f < -\|g_r\|^2$ the step *increases* the real loss: the fake term, with its
# larger gradient, drags the discriminator into scoring real images worse. The inner product
# $g_r^\top g_f$ is the signal of a conflict.
#
# ## The rule, and its geometry
#
# The rule looks at the mean scores $r_s = \overline{\mathrm{sigmoid}(D(x))}$ and
# $f_s = \overline{\mathrm{sigmoid}(D(G(z)))}$ to decide which loss is behind, and at the sign of
# $g_r^\top g_f$ to decide whether the two fight. Ignoring the small floor $\varepsilon$ added to
# both weights, the normalised rule (their Algorithm 1) gives, when the real loss is behind
# and the gradients conflict,
#
# $$w_r g_r + w_f g_f = \frac{1}{\|g_r\|}\Big(g_r - \frac{g_r^\top g_f}{\|g_f\|^2}\, g_f\Big),$$
#
# the part of $g_r$ orthogonal to $g_f$: a step that lowers $L_r$ and, to first order, leaves
# $L_f$ alone. When they agree, $w_f = 0$ and the step follows $g_r$ alone. The case where the
# real loss is ahead is the mirror image, and in between both unit gradients are summed.
# Here is the rule as implemented, constant by constant:

# %%
show_source(adaptive_weights)

# %% [markdown]
# The five cases on two-dimensional gradients ($g_r = (3, 4)$, the test vectors): the
# plain sum (grey) and the direction of the aw combination (red, drawn at length 4).

# %%
g_real = torch.tensor([3.0, 4.0])
examples = [([-2.0, 1.0], 0.4, 0.5), ([1.0, 2.0], 0.4, 0.5), ([-2.0, 1.0], 0.8, 0.3),
            ([1.0, 2.0], 0.8, 0.3), ([-2.0, 1.0], 0.6, 0.5)]
fig, axes = plt.subplots(1, 5, figsize=(16, 3.6))
for ax, (g_f, rs, fs) in zip(axes, examples):
    g_fake = torch.tensor(g_f)
    w = adaptive_weights(g_real, g_fake, rs, fs)
    combined = w.w_real * g_real + w.w_fake * g_fake
    arrows = [(g_real, "tab:blue", "g_r"), (g_fake, "tab:orange", "g_f"),
              (g_real + g_fake, "grey", "g_r + g_f"),
              (4 * combined / combined.norm(), "tab:red", "aw direction (length 4)")]
    for vector, colour, label in arrows:
        ax.quiver(0, 0, vector[0].item(), vector[1].item(), color=colour, label=label,
                  angles="xy", scale_units="xy", scale=1, width=0.015)
    ax.set_xlim(-3, 5)
    ax.set_ylim(-1, 6)
    ax.set_aspect("equal")
    ax.set_xlabel("parameter 1")
    ax.set_ylabel("parameter 2")
    ax.set_title(f"{w.case}\nrs={rs}, fs={fs}: w_r={w.w_real:.3f}, w_f={w.w_fake:.3f}", fontsize=8)
axes[0].legend(fontsize=7, loc="upper left")
fig.suptitle("Where real is behind and the gradients conflict, "
             "aw follows g_r with its g_f-component removed")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## When each case fires
#
# The score part of the rule splits the $(r_s, f_s)$ square into three regions, with the
# constants of the aw paper: $\alpha_1 = 0.5$, $\alpha_2 = 0.75$, $\delta = 0.05$. The sign of
# $g_r^\top g_f$ then picks the sub-case within the first two.

# %%
grid = np.linspace(0, 1, 201)
rs_grid, fs_grid = np.meshgrid(grid, grid)
real_behind = (rs_grid < ALPHA1) | (rs_grid < fs_grid - DELTA)
real_ahead = ~real_behind & (rs_grid > ALPHA2) & (rs_grid > fs_grid - DELTA)
region = np.where(real_behind, 0, np.where(real_ahead, 2, 1))
fig, ax = plt.subplots(figsize=(5, 4.2))
image = ax.pcolormesh(rs_grid, fs_grid, region, cmap=plt.get_cmap("coolwarm", 3), shading="auto")
bar = fig.colorbar(image, ticks=[1 / 3, 1, 5 / 3])
bar.ax.set_yticklabels(["real behind:\nboost L_r", "balanced", "real ahead:\nboost L_f"])
ax.set_xlabel("r_s = mean sigmoid(D(x)) on real images")
ax.set_ylabel("f_s = mean sigmoid(D(G(z))) on fakes")
ax.set_title(f"Regions of the aw rule (α1={ALPHA1}, α2={ALPHA2}, δ={DELTA})")
plt.show()

# %% [markdown]
# ## A GAN small enough to watch: eight Gaussians on a ring
#
# The generator maps 16-dimensional noise to a point in the plane; the target is a mixture of
# eight Gaussians (std 0.05) on a circle of radius 2. Both networks are small MLPs; the
# discriminator is spectrally normalised (notebook 3). We train each loss from the same seeds,
# one discriminator and one generator step per iteration, Adam with betas (0, 0.9) at lr 1e-3.
# The only difference between the two arms is the discriminator's gradient: $g_r + g_f$ against
# the aw combination, written into `.grad` by:

# %%
show_source(aw_discriminator_backward)

# %%
seeds = list(range(profile.toy_seeds))
jobs = tqdm([(loss, s) for loss in ("hinge", "aw") for s in seeds], desc="toy GAN runs")
trained = {(loss, s): train_toy_gan(loss, steps=profile.toy_steps, seed=s) for loss, s in jobs}
runs = {loss: [trained[loss, s] for s in seeds] for loss in ("hinge", "aw")}
print(f"{profile.toy_steps} iterations per run, batch 256, seeds {seeds} ({profile.name} profile); "
      f"quality measured on 2,000 samples per run")
print(f"{'loss':<6} {'seed':>4} {'modes (of 8)':>13} {'high-quality share':>19}")
scores = {}
for loss, loss_runs in runs.items():
    for run in loss_runs:
        modes, quality = mode_coverage(run.samples)
        scores[loss, run.seed] = (modes, quality)
        print(f"{loss:<6} {run.seed:>4} {modes:>13} {quality:>19.1%}")

# %% [markdown]
# A mode counts as covered when at least 1% of the samples lie within three standard deviations
# of it; the high-quality share is the fraction of samples within three standard deviations of
# any mode. The samples, side by side (black crosses: the eight centres):

# %%
centres = ring_centres()
fig, axes = plt.subplots(2, len(seeds), figsize=(3.2 * len(seeds), 6.4), squeeze=False)
for row, (loss, loss_runs) in enumerate(runs.items()):
    for col, run in enumerate(loss_runs):
        ax = axes[row, col]
        ax.scatter(run.samples[:, 0], run.samples[:, 1], s=2, alpha=0.4)
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", color="black")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        modes, quality = scores[loss, run.seed]
        ax.set_title(f"{loss}, seed {run.seed}: {modes}/8 modes, {quality:.0%} good", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
fig.suptitle(f"Generator samples after {profile.toy_steps} iterations: "
             f"hinge (top) against aw (bottom)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Which cases fire during training, and the weights they set

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6))
bottom = np.zeros(len(seeds))
for case in AW_CASES:
    shares = np.array([run.case_counts()[case] / len(run.cases) for run in runs["aw"]])
    left.bar([f"seed {s}" for s in seeds], shares, bottom=bottom, label=case)
    bottom += shares
left.set_ylabel("share of discriminator steps")
left.set_title("How often each aw case fires")
left.legend(fontsize=7)
first = runs["aw"][0]
window = smoothing_window(len(first.w_real))
right.plot(moving_average(first.w_real), label="w_r")
right.plot(moving_average(first.w_fake), label="w_f")
right.set_yscale("log")
right.set_xlabel("iteration")
right.set_ylabel(f"weight (moving mean over {window} steps)")
right.set_title(f"aw weights through training, seed {first.seed}")
right.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - The real and fake parts of the discriminator loss fight when $g_r^\top g_f < 0$; summing
#   them can then raise the very loss that is behind.
# - The aw rule detects which part is behind from the mean sigmoid scores and, when the
#   gradients conflict, follows that part's unit gradient plus the share of the other's that does
#   not oppose it. When they agree, it follows the part that is behind alone: the other weight is
#   then only the floor ε = 0.05 that every weight gets. Only the balanced case sums both
#   unit-normalised gradients. How much of the weights the floor makes up in these runs is
#   computed below.
# - On the ring of Gaussians, the cell below answers the question at this profile's budget:
#   modes covered per seed by both losses from the same seeds, and whether the difference is
#   larger than its spread. With a handful of seeds this is an illustration, not a benchmark:
#   the conditional CIFAR GAN of notebooks 5–7 is where the FID comparison lives.

# %%
for loss in ("hinge", "aw"):
    modes = [scores[loss, s][0] for s in seeds]
    quality = [scores[loss, s][1] for s in seeds]
    print(f"{loss:<6} modes covered per seed {modes}, "
          f"mean high-quality share {np.mean(quality):.1%} "
          f"({profile.toy_steps} iterations, {len(seeds)} seeds, {profile.name} profile)")
all_w = np.array([w for run in runs["aw"] for w in (*run.w_real, *run.w_fake)])
floor_only = np.mean(np.isclose(all_w, EPSILON))
print(f"aw weight floor epsilon = {EPSILON}: {EPSILON / all_w.mean():.1%} of the mean weight, and "
      f"{floor_only:.1%} of all weights set in the aw runs are the floor alone")
print(coverage_verdict([scores["hinge", s][0] for s in seeds], [scores["aw", s][0] for s in seeds],
                       profile.toy_steps))

# %% [markdown]
# ## Exercises
#
# 1. **More seeds.** Add two seeds to the toy comparison and recompute `coverage_verdict`. Does
#    the verdict change? How many seeds would a difference of one mode need to be conclusive?
# 2. **Where the rule switches.** Keep the two conflicting gradients of the first example above
#    and sweep the real score $r_s$ from 0.3 to 0.9 (fake score 0.5). At which scores does the
#    case change, and how do those points follow from $\alpha_1$, $\alpha_2$ and $\delta$?
#
# The starter runs as it is (it trains one more seed per loss at this profile's budget).

# %%
extra = len(seeds)
for loss in ("hinge", "aw"):
    scores[loss, extra] = mode_coverage(train_toy_gan(loss, steps=profile.toy_steps,
                                                      seed=extra).samples)
print(coverage_verdict([scores["hinge", s][0] for s in [*seeds, extra]],
                       [scores["aw", s][0] for s in [*seeds, extra]], profile.toy_steps))
g_real, g_fake = torch.tensor([-2.0, 1.0]), torch.tensor([1.0, 2.0])
for real_score in (0.3, 0.5, 0.6, 0.8, 0.9):
    case = adaptive_weights(g_real, g_fake, real_score, 0.5).case
    print(f"r_s {real_score:.1f}, f_s 0.5: {case}")

# %% [markdown]
# ### Solutions
#
# Worked answers, computed at this profile from the cells above. The book folds them away: try
# the exercises first, then click to show.

# %% tags=["hide-cell"]
def verdict_over(chosen: list[int]):
    """The coverage verdict of the toy comparison over the seeds `chosen`."""
    return coverage_verdict([scores["hinge", s][0] for s in chosen],
                            [scores["aw", s][0] for s in chosen], profile.toy_steps)


before, after = verdict_over(seeds), verdict_over([*seeds, extra])
per_seed = after.spread * math.sqrt(len(seeds) + 1)  # one seed's difference, std in modes
needed = (f"about {math.ceil((2 * per_seed) ** 2)} seeds at {per_seed:.2f} modes per seed"
          if per_seed > 0 else "a spread between seeds, which these do not show")
print(f"1. With {len(seeds)} seeds: {before.text}\n   With {len(seeds) + 1}: {after.text}\n"
      f"   The verdict {'is the same' if before.conclusive == after.conclusive else 'changes'}."
      f" A one-mode difference is conclusive once its standard error is under 0.5: {needed}.")
sweep = [round(0.3 + 0.01 * i, 2) for i in range(61)]
cases = [adaptive_weights(g_real, g_fake, r, 0.5).case for r in sweep]
switches = [f"at r_s = {sweep[i]:.2f} '{cases[i - 1]}' becomes '{cases[i]}'"
            for i in range(1, len(sweep)) if cases[i] != cases[i - 1]]
print(f"2. Fake score 0.5: {'; '.join(switches)}. The real loss is behind below alpha1 = "
      f"{ALPHA1} (or below f_s - delta = {0.5 - DELTA:.2f}), ahead above alpha2 = {ALPHA2}; "
      f"in between, both count (balanced).")
