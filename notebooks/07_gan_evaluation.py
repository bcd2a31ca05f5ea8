# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Evaluating the GAN: samples, interpolations, FID, KID and LPIPS
#
# **Question.** The paper reports FID 38.27 against the CIFAR-100 test set for its conditional
# GAN (32.00 unconditional) and an LPIPS of 0.23 to the nearest training images. What do our
# models score, at what sample counts, and what do their samples look like?

# %%
import matplotlib.pyplot as plt
import torch

from nbcode.data import load_for_profile
from nbcode.fid import fid_kid, lpips_available, lpips_to_nearest, save_evaluation
from nbcode.gan import LATENT
from nbcode.gan_train import GANSettings, load_trained_generator, to_uint8, train_gan
from nbcode.plots import image_grid
from nbcode.profiles import describe, get_profile, pick_device

torch.manual_seed(0)
profile = get_profile()
device = pick_device()
print(describe(profile, device))

# %% [markdown]
# The conditional run of notebook 6 and its unconditional twin (trained here if not cached):

# %%
records = {"conditional": train_gan(GANSettings(loss="aw"), profile),
           "unconditional": train_gan(GANSettings(loss="aw", conditional=False), profile)}
generators = {name: load_trained_generator(record) for name, record in records.items()}
classes = records["conditional"]["classes"]
for name, record in records.items():
    print(f"{name}: {record['run']} ({record['data']})")


# %% [markdown]
# ## Figure 2: a random batch
#
# 64 samples with random labels, not cherry-picked, from the averaged generator.

# %%
generator = torch.Generator().manual_seed(1)
z = torch.randn(64, LATENT, generator=generator)
labels = torch.randint(0, len(classes), (64,), generator=generator)
with torch.no_grad():
    batch = to_uint8(generators["conditional"](z, labels))
image_grid(batch, [classes[i][:12] for i in labels], title=f"64 random samples, random labels "
           f"({records['conditional']['dataset']}, {profile.name} profile)")
plt.show()

# %% [markdown]
# ## Figure 3: interpolations in the latent space
#
# For each class, a straight line between two noise vectors, with the label fixed. The paper
# shows poppy, apple, mountain, cloud, rocket, cattle, willow tree and whale; on another dataset
# we take its first eight classes.

# %%
wanted = ["poppy", "apple", "mountain", "cloud", "rocket", "cattle", "willow_tree", "whale"]
chosen = [classes.index(c) for c in wanted if c in classes] or list(range(min(8, len(classes))))
steps = torch.linspace(0, 1, 8).view(-1, 1)
rows = []
for c in chosen:
    ends = torch.randn(2, LATENT, generator=generator)
    line = (1 - steps) * ends[0] + steps * ends[1]
    with torch.no_grad():
        rows.append(to_uint8(generators["conditional"](line, torch.full((8,), c))))
image_grid(torch.cat(rows), [f"{classes[c][:12]} {t:.2f}" for c in chosen for t in steps.flatten().tolist()],
           title="Latent interpolations, one class per row (left to right: t = 0 → 1)")
plt.show()

# %% [markdown]
# ## Figure 4: rows of one class
#
# The paper singles out *pickup truck* and *woman*; on another dataset we take two of its classes.

# %%
picked = [classes.index(c) for c in ("pickup_truck", "woman") if c in classes] or [1, len(classes) - 1]
with torch.no_grad():
    rows = [to_uint8(generators["conditional"](torch.randn(8, LATENT, generator=generator), torch.full((8,), c)))
            for c in picked]
image_grid(torch.cat(rows), [classes[c][:12] for c in picked for _ in range(8)],
           title="Eight samples of each class, not cherry-picked")
plt.show()

# %% [markdown]
# ## FID and KID against the test split
#
# Fréchet Inception Distance and Kernel Inception Distance with torch-fidelity's
# `inception-v3-compat` network (the 2015-12-05 TensorFlow FID Inception), the test split as
# reference. FID is biased upwards at small sample counts, so numbers are only comparable at
# equal counts: the paper profile uses 10,000 generated against 10,000 test images. Inception
# Score is not reported: the offline Inception weights carry no classifier.

# %%
test = load_for_profile(profile, "test", records["conditional"]["dataset"]).subset(profile.fid_samples)
scores = {name: fid_kid(g, test, profile.fid_samples, seed=0) for name, g in generators.items()}
for name, s in scores.items():
    save_evaluation(records[name], s)  # the run record the book's results page reads
print(f"{'model':<14} {'FID':>8} {'KID ×1000':>16} {'n generated':>12} {'n reference':>12}  inception weights")
for name, s in scores.items():
    print(f"{name:<14} {s['fid']:8.2f} {1000 * s['kid_mean']:8.2f} ± {1000 * s['kid_std']:5.2f} "
          f"{s['n_generated']:>12,} {s['n_reference']:>12,}  {s['inception_weights']}")
print(f"reference: {test.describe()}; profile {profile.name}, {records['conditional']['iterations']:,} iterations")
print("the paper: FID 38.27 conditional, 32.00 unconditional (CIFAR-100 test set, 50,000 iterations)")

# %% [markdown]
# ## LPIPS to the nearest training images
#
# For each generated image, its nearest training image in pixel space, then the LPIPS distance
# (AlexNet backbone) between the two. LPIPS needs torchvision's pretrained AlexNet; when it
# cannot be loaded (no internet, no cached copy) we say so instead of using a random backbone.

# %%
if lpips_available():
    train = load_for_profile(profile, "train", records["conditional"]["dataset"]).subset(5000)
    distances = lpips_to_nearest(batch, train.images)
    print(f"LPIPS to nearest of {len(train):,} training images: {distances.mean():.3f} ± {distances.std():.3f} "
          f"over {len(batch)} samples (the paper: 0.23)")
else:
    print("LPIPS unavailable: torchvision's AlexNet weights are not cached and cannot be downloaded here.")

# %% [markdown]
# ## Summary
#
# - Figures 2–4 above are drawn from the run printed at the top, at this profile's budget.
# - The FID/KID table states its sample counts; only the paper profile (10,000 against
#   10,000, CIFAR-100 test split, 50,000 iterations) is comparable with the paper's 38.27 and 32.00.

# %%
for name, s in scores.items():
    print(f"{name}: FID {s['fid']:.2f} ({s['n_generated']} generated vs {s['n_reference']} test images, "
          f"{profile.name} profile)")
