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
# # 2. Training the 94k-parameter DS-ResNet, with the paper's recipe and an improved one
#
# **Question.** The paper trains a 94,372-parameter depthwise-separable ResNet for 10,000 steps
# at batch 512 with Adam (lr 1e-3, no weight decay) and reports 57.7% ± 2.3% test accuracy on
# CIFAR-100 (65% with doubled widths, 334,052 parameters). Does our model reproduce that, and
# can a better recipe at the same budget and parameter count do better?
#
# Training runs are cached: re-running this notebook loads finished runs instead of training
# them again. To train at the paper's budget on a GPU without a notebook:
#
# ```bash
# python -m nbcode.train classifier --profile paper --recipe paper
# python -m nbcode.train classifier --profile paper --recipe improved
# python -m nbcode.train classifier --profile paper --recipe improved --width-factor 2
# ```

# %%
import matplotlib.pyplot as plt
import torch

from nbcode.display import print_warnings_as_notes, show_source
from nbcode.profiles import describe, get_profile, pick_device
from nbcode.resnet import DSResNet, ResidualBlock, count_parameters
from nbcode.train import RECIPES, ablations, recipe_verdict, train_classifier

torch.manual_seed(0)
print_warnings_as_notes()  # notices as plain lines, without the paths of this machine
profile = get_profile()
device = pick_device()
print(describe(profile, device))

# %% [markdown]
# ## The model
#
# The paper gives a stem of 32 channels, four residual stages of 32, 64, 96 and 128 channels
# built from depthwise-separable units, average pooling and a 100-way linear layer — and two
# parameter counts. One natural reading hits both exactly: one residual block of two DS units
# per stage, the channel change in the first pointwise convolution, and a 1×1 projection
# shortcut wherever the width changes.

# %%
show_source(ResidualBlock)

# %%
for factor in (1, 2):
    model = DSResNet(width_factor=factor)
    print(f"widths {model.widths}: {count_parameters(model):,} parameters")

# %% [markdown]
# **Where the strides go.** The counts do not depend on it, so we choose: stage 1 keeps the full
# 32×32 resolution and stages 2–4 halve it (16, 8, 4), with the stride in the first depthwise
# convolution and in the projection shortcut. Striding earlier (e.g. in the stem) would cut the
# compute about fourfold but throw away detail before any residual block has seen it, on
# images that are already tiny; striding later would leave a 128-channel stage at 8×8 or more,
# multiplying the cost of the widest layers. Halving at each stage transition is the standard
# CIFAR ResNet layout (He et al., 2016), with the final 4×4 map pooled to one vector.
#
# ## Two recipes
#
# The paper's recipe, and ours. Ours changes only the optimisation, not the model or the data:
# AdamW with decoupled weight decay 0.05 on conv and linear weights, a one-cycle schedule (15%
# linear warm-up to lr 4e-3, cosine decay), label smoothing 0.1, and averaging the logits of
# each test image and its mirror image. Both use the same augmentation (crop with 4-pixel
# padding, flip, colour jitter 0.2, normalisation).

# %%
for recipe in RECIPES.values():
    print(recipe)

# %% [markdown]
# A tenth of the training split is held out as a **validation** set: every comparison below is
# read off it. The test split is only reported. The budget of this profile is printed at the top.

# %%
runs = {"paper recipe": train_classifier("paper", profile),
        "improved recipe": train_classifier("improved", profile),
        "improved recipe, 2x width": train_classifier("improved", profile, width_factor=2)}
print(runs["paper recipe"]["data"])
print("images scored per evaluation:", runs["paper recipe"]["eval_images"])

# %% [markdown]
# ## Accuracy through training (the paper's Figure 1)
#
# Train accuracy is measured on training images without augmentation, at each evaluation.

# %%
fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.6), sharey=True)
for ax, (name, record) in zip(axes, runs.items()):
    steps = [h["step"] for h in record["history"]]
    for split in ("train", "validation", "test"):
        ax.plot(steps, [100 * h[split] for h in record["history"]], label=split)
    ax.set_title(f"{name} ({record['parameters']:,} params)", fontsize=10)
    ax.set_xlabel("training step")
    ax.legend()
axes[0].set_ylabel("top-1 accuracy (%)")
fig.suptitle(f"Accuracy during training — {record['dataset']}, profile {profile.name}, "
             f"{record['steps']} steps × batch {record['batch']}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Results
#
# As in the paper, each accuracy is the mean ± standard deviation over the last evaluations:
# here the last quarter of them (the count is in the table; with one, the std is 0). The
# parameter count depends on the dataset: the head has one output per class.

# %%
print(f"{'run':<28} {'params':>8} {'train':>14} {'validation':>14} {'test':>14}  evals")
for name, record in runs.items():
    final = record["final"]
    cells = [f"{100 * final[s]['mean']:5.1f} ± {100 * final[s]['std']:3.1f}%" for s in ("train", "validation", "test")]
    print(f"{name:<28} {record['parameters']:>8,} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}  "
          f"{final['test']['evals']}")
print(f"\ndataset {record['dataset']}, profile {profile.name}: {record['steps']} steps × batch {record['batch']}, "
      f"seed {record['seed']}, device {record['device']}, commit {record['commit']}")
print("the paper (CIFAR-100, 10,000 steps × 512): 94,372 params 57.7 ± 2.3% test; 334,052 params 65% test")

# %% [markdown]
# ## Which of the four changes earn their place?
#
# An ablation: the improved recipe with one change at a time undone (back to the paper's
# setting), at this profile's classifier budget and seed, compared with the full improved
# recipe on validation. A change earns its place when removing it costs more than the spread.

# %%
show_source(ablations)

# %%
ablated = {change: train_classifier(recipe, profile) for change, recipe in ablations().items()}
improved = runs["improved recipe"]
earned = []
for change, record in ablated.items():
    verdict = recipe_verdict(record, improved)
    print(f"without {change}: validation {100 * record['final']['validation']['mean']:.1f}%\n  {verdict}")
    if verdict.endswith("better at this budget."):
        earned.append(change)
print(f"\nchanges that earn their place at this budget: {', '.join(earned) or 'none shown'}; "
      f"the others are inconclusive or hurt ({improved['dataset']}, {profile.name} profile, "
      f"{improved['steps']:,} steps x {improved['batch']})")

# %% [markdown]
# ## Summary
#
# - Our reading of the architecture has exactly the paper's 94,372 and 334,052 parameters.
# - The recipes are compared on the validation split; the test column is reported only. Only
#   runs at the **paper** profile on **CIFAR-100** are comparable with the paper's 57.7% and
#   65%: the dataset and budget of every number are printed with it.
# - The improved recipe changes optimisation only (AdamW, one-cycle, label smoothing, flip
#   test-time augmentation), so whatever it gains costs no parameters and no extra steps.
#
# The cell below answers the question at this profile's budget: each comparison is a
# difference in validation points with its spread, "inconclusive" when the spread is larger.

# %%
paper_run = runs["paper recipe"]
print(recipe_verdict(paper_run, runs["improved recipe"]))
print(recipe_verdict(runs["improved recipe"], runs["improved recipe, 2x width"]))
for name, record in runs.items():
    print(f"{name}: test {100 * record['final']['test']['mean']:.1f}% on {record['eval_images']['test']:,} "
          f"test images ({record['dataset']}, {profile.name}, {record['steps']}×{record['batch']})")

# %% [markdown]
# ## Exercises
#
# 1. **How big is the seed-to-seed spread?** Train the improved recipe again with `seed=1` and
#    compare it with seed 0 using `recipe_verdict`. Is the paper-vs-improved gap above larger
#    than what changing the seed alone does?
# 2. **Width or steps?** The 2x-width model has 3.5x the parameters. Compare validation accuracy
#    per parameter for the three runs above. At this budget, would you spend compute on width
#    or on more steps? Which experiment would settle it?
#
# The starter runs as it is (it trains one more run at this profile's budget).

# %%
other_seed = train_classifier("improved", profile, seed=1)
print(recipe_verdict(runs["improved recipe"], other_seed))
for name, record in runs.items():
    print(f"{name}: {record['parameters']:,} parameters, validation "
          f"{100 * record['final']['validation']['mean']:.1f}%")
