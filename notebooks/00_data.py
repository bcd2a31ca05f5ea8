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
# # 0. The data: CIFAR-100 and what augmentation does to it
#
# **Question.** What do the images we train on look like, how are they labelled, and what does
# our training-time augmentation do to them?
#
# CIFAR-100 (Krizhevsky, 2009) holds 60,000 colour images of 32×32 pixels: 50,000 for training
# and 10,000 for testing, in 100 classes of 600 images each. The 100 "fine" classes are grouped
# into 20 "coarse" superclasses of five. The paper trains both of its models on it.
#
# Every notebook in this book starts the same way: it picks a **profile** (the budgets: steps,
# batch sizes, sample counts) and a **device**, and prints both, so that every number below can
# be traced to what produced it. Set `NBCODE_PROFILE=smoke|quick|paper` before starting
# JupyterLab to change the profile, `NBCODE_DATASET=cifar10` to use CIFAR-10 instead.

# %%
import matplotlib.pyplot as plt
import torch

from nbcode.augment import Augmentation, augment_batch
from nbcode.book.display import print_warnings_as_notes, show_source
from nbcode.book.plots import image_grid
from nbcode.data.datasets import channel_stats, load_for_profile
from nbcode.runs.profiles import describe, get_profile, pick_device

torch.manual_seed(0)
print_warnings_as_notes()  # notices as plain lines, without the paths of this machine
profile = get_profile()
device = pick_device()
print(describe(profile, device))

# %% [markdown]
# ## Loading
#
# `nbcode.data.datasets` reads the dataset's pickled batches into memory as one `uint8` tensor of
# shape `(N, 3, 32, 32)` plus integer labels (its size is printed below), small enough to keep on
# the GPU, which is what makes batched augmentation possible later. When the data is
# not on disk the smoke profile (used by the tests) falls back to a *synthetic* stand-in, and
# says so in every caption.

# %%
train = load_for_profile(profile, "train")
test = load_for_profile(profile, "test")
print(train.describe())
print(test.describe())
print("images:", tuple(train.images.shape), train.images.dtype,
      "| labels:", tuple(train.labels.shape),
      f"| {train.images.numel() * train.images.element_size() / 1e6:.0f} MB of pixels in memory")

# %% [markdown]
# ## Classes and superclasses
#
# Each superclass groups several fine classes; the table lists them.

# %%
if train.coarse_labels is not None:
    for c, coarse_name in enumerate(train.coarse_classes):
        fine = train.labels[train.coarse_labels == c].tolist()
        members = sorted({train.classes[f] for f in fine})
        print(f"{coarse_name:<32} {', '.join(members)}")
else:
    print("classes:", ", ".join(train.classes))

# %% [markdown]
# ## How many images per class?
#
# CIFAR is balanced by construction. A bar per class makes any imbalance in a subset (such as
# the smoke profile's cut of the training split) visible at once.

# %%
train_counts = torch.bincount(train.labels, minlength=len(train.classes))
test_counts = torch.bincount(test.labels, minlength=len(test.classes))
fig, ax = plt.subplots(figsize=(10, 2.8))
ax.bar(range(len(train.classes)), train_counts.numpy(), label="train", width=0.9)
ax.bar(range(len(test.classes)), test_counts.numpy(), label="test", width=0.9, alpha=0.8)
ax.set_xlabel("class index")
ax.set_ylabel("images")
ax.set_title(f"Images per class: {train.name}, profile {profile.name}")
ax.legend()
plt.show()
print(f"train: {train_counts.min().item()}-{train_counts.max().item()} images per class; "
      f"test: {test_counts.min().item()}-{test_counts.max().item()}")

# %% [markdown]
# ## What the images look like
#
# The first training image of each of the first 32 classes.

# %%
shown = list(range(min(32, len(train.classes))))
firsts = torch.stack([train.images[(train.labels == c).nonzero()[0, 0]] for c in shown])
image_grid(firsts, [train.classes[c] for c in shown],
           title=f"One image per class — {train.describe()}")
plt.show()

# %% [markdown]
# ## Per-channel mean and standard deviation
#
# Inputs are normalised per colour channel with the training split's own statistics, computed
# here over every pixel of every training image (in [0, 1] units).

# %%
mean, std = channel_stats(train.images)
for channel, m, s in zip("RGB", mean.tolist(), std.tolist()):
    print(f"{channel}: mean {m:.4f}  std {s:.4f}")

# %% [markdown]
# ## Augmentation, on whole batches at once
#
# The paper augments with random crops, flips, colour jitter and normalisation. The common
# recipe applies these to one PIL image at a time in DataLoader workers; on a 2-core machine that
# starves the model. `augment_batch` does the same random choices for a whole batch with a few
# tensor operations, on the device the batch lives on (`benchmarks/data_pipeline.py` measures the
# difference):

# %%
show_source(augment_batch)

# %% [markdown]
# Eight training images (top row) and three augmented draws of each (rows below). For display
# we skip the final normalisation step by passing mean 0 and std 1.

# %%
originals = train.images[:8]
generator = torch.Generator().manual_seed(0)
no_normalisation = torch.zeros(3), torch.ones(3)  # mean 0, std 1: pixels stay in [0, 1]
draws = [augment_batch(originals, *no_normalisation, Augmentation(), generator) for _ in range(3)]
image_grid(torch.cat([originals.float() / 255, *draws]), ncols=8,
           title="Top row: originals; below: three augmented draws (crop+pad 4, flip, jitter 0.2)")
plt.show()

# %% [markdown]
# ## Summary
#
# - The training split printed above is what every later notebook trains on under this profile;
#   its class counts, names and per-channel statistics are computed here, not quoted.
# - Images stay in memory as `uint8` tensors; augmentation runs per batch on the training device.
# - Under the smoke profile without CIFAR on disk, everything above is **synthetic** data:
#   striped patterns, one colour pair, angle and frequency per class, that a small network can
#   learn. It exists so the notebooks run in the tests; its numbers say nothing about CIFAR.
#
# The cell below answers the chapter's question from the numbers above.

# %%
changed = (draws[0] != originals.float() / 255).float().mean().item()
balance = "balanced" if train_counts.min() == train_counts.max() else (
    f"not balanced ({train_counts.min().item()} to {train_counts.max().item()} per class)")
print(f"We train on {len(train):,} images of {len(train.classes)} classes "
      f"({train_counts.min().item():,}-{train_counts.max().item():,} per class: {balance}) "
      f"and test "
      f"on {len(test):,}; {train.describe()}.")
print(f"Per-channel mean {[round(v, 3) for v in mean.tolist()]} and std "
      f"{[round(v, 3) for v in std.tolist()]} (in [0, 1] units) normalise every batch; one "
      f"augmented draw changes {changed:.0%} of the pixel values of the eight images shown.")

# %% [markdown]
# ## Exercises
#
# 1. **Class balance.** Predict how many training images each class has (CIFAR-100: 50,000
#    images, 100 classes), then count them with `torch.bincount`. What does the held-out
#    validation tenth of notebook 2 do to the balance?
# 2. **Stronger jitter.** Set brightness, contrast and saturation to 0.8 in `Augmentation` and
#    look at the draws. Which classes could such jitter make harder to tell apart, and why?
#
# The starter runs as it is; change it to answer both.

# %%
counts = torch.bincount(train.labels, minlength=len(train.classes))
print(f"images per class: min {counts.min().item()}, max {counts.max().item()} "
      f"({train.describe()})")
strong = Augmentation(brightness=0.8, contrast=0.8, saturation=0.8)
strong_draws = augment_batch(originals, *no_normalisation, strong, torch.Generator().manual_seed(0))
image_grid(torch.cat([originals.float() / 255, strong_draws]), ncols=8,
           title="Exercise 2: originals, and draws with jitter 0.8")
plt.show()

# %% [markdown]
# ### Solutions
#
# Worked answers, computed at this profile from the cells above. The book folds them away: try
# the exercises first, then click to show.

# %% tags=["hide-cell"]
from nbcode.runs.classifier import split_validation  # notebook 2's validation split

kept = torch.bincount(split_validation(train)[0].labels, minlength=len(train.classes))
balanced = "still exactly balanced" if kept.min() == kept.max() else "no longer exactly balanced"
print(f"1. {counts.min().item()} to {counts.max().item()} images per class in "
      f"{train.describe()}; after holding out a random tenth, {kept.min().item()} to "
      f"{kept.max().item()}: {balanced} (the tenth is drawn at random, not per class).")
# 2. Strong jitter moves an image's mean colour; classes whose mean colours lie closer
# together than that shift are the ones it can blur into each other.
before = (originals.float() / 255).mean(dim=(2, 3))
shift = (strong_draws.mean(dim=(2, 3)) - before).norm(dim=1).mean()
colour = torch.stack([(train.images[train.labels == c].float() / 255).mean(dim=(0, 2, 3))
                      for c in range(len(train.classes))])
gaps = torch.cdist(colour, colour).fill_diagonal_(float("inf"))
a, b = divmod(gaps.argmin().item(), len(train.classes))
print(f"2. Jitter 0.8 moves these 8 images' mean colour by {shift:.3f} on average (RGB in "
      f"[0, 1]); the median class's nearest class by mean colour is "
      f"{gaps.min(1).values.median():.3f} away, the closest pair ({train.classes[a]}, "
      f"{train.classes[b]}) {gaps.min():.3f}. Classes told apart mostly by colour are the "
      f"ones such jitter confuses.")
