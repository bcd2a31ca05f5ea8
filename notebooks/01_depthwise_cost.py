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
# # 1. What a depthwise-separable convolution costs
#
# **Question.** The paper replaces standard convolutions with depthwise-separable ones to cut
# "the number of operations and, consequently, runtime" (eq. 2). How large is the cut in
# multiply-adds and parameters, and how much of it shows up as speed on this device?

# %%
import matplotlib.pyplot as plt
import torch

from nbcode.book.display import print_warnings_as_notes, show_source
from nbcode.cost import (
    cost_ratio,
    count_parameters,
    counted_macs,
    median_seconds,
    separable_conv,
    separable_conv_macs,
    separable_conv_params,
    standard_conv,
    standard_conv_macs,
    standard_conv_params,
)
from nbcode.resnet import DSResNet
from nbcode.runs.profiles import describe, get_profile, pick_device

torch.manual_seed(0)
print_warnings_as_notes()  # notices as plain lines, without the paths of this machine
profile = get_profile()
device = pick_device()
print(describe(profile, device))

# %% [markdown]
# ## Counting by hand
#
# A standard $D_K \times D_K$ convolution from $M$ to $N$ channels on a $D_F \times D_F$ map
# multiplies every output pixel of every output channel by a $D_K \times D_K \times M$ window:
# $D_K^2 \, M N D_F^2$ multiply-adds. The depthwise-separable version first filters each input
# channel on its own ($D_K^2 M D_F^2$, the depthwise part of eq. 2) and then mixes channels with
# a 1×1 convolution ($M N D_F^2$, the pointwise part). Dividing,
#
# $$\frac{D_K^2 M D_F^2 + M N D_F^2}{D_K^2 M N D_F^2} = \frac{1}{N} + \frac{1}{D_K^2},$$
#
# which for 3×3 kernels tends to 1/9 as the width grows. Parameters shrink by the same factor.

# %%
show_source(separable_conv_macs)

# %% [markdown]
# The layer itself. The paper's eq. (1) defines the depthwise part: output channel $m$ filters
# input channel $m$ alone with its own $D_K \times D_K$ kernel,
#
# $$\hat{G}_{k,l,m} = \sum_{i,j} \hat{K}_{i,j,m} \, F_{k+i-1,\,l+j-1,\,m},$$
#
# which is a convolution with `groups=M` (one group per channel); the pointwise part is a 1×1
# convolution that mixes the channels:

# %%
show_source(separable_conv)

# %% [markdown]
# ## Counting with PyTorch
#
# `torch.utils.flop_counter.FlopCounterMode` counts the FLOPs of the actual convolution calls
# (two per multiply-add). Across widths $M = N$, on a 16×16 map with 3×3 kernels, the two counts
# must agree exactly:

# %%
d_k, d_f = 3, 16
widths = [32, 64, 96, 128, 256, 512]
rows = []
for n in widths:
    standard, separable = standard_conv(d_k, n, n), separable_conv(d_k, n, n)
    analytic = (standard_conv_macs(d_k, n, n, d_f), separable_conv_macs(d_k, n, n, d_f))
    counted = (counted_macs(standard, (1, n, d_f, d_f)), counted_macs(separable, (1, n, d_f, d_f)))
    assert analytic == counted, (n, analytic, counted)
    rows.append(dict(width=n, standard_macs=analytic[0], separable_macs=analytic[1],
                     standard_params=standard_conv_params(d_k, n, n),
                     separable_params=separable_conv_params(d_k, n, n),
                     ratio=analytic[1] / analytic[0], formula=cost_ratio(d_k, n)))
print(f"{'M=N':>5} {'standard MACs':>14} {'separable MACs':>15} {'params std':>11} "
      f"{'params sep':>11} {'ratio':>7} {'1/N+1/9':>8}")
for r in rows:
    print(f"{r['width']:>5} {r['standard_macs']:>14,} {r['separable_macs']:>15,} "
          f"{r['standard_params']:>11,} {r['separable_params']:>11,} {r['ratio']:>7.4f} "
          f"{r['formula']:>8.4f}")
print("analytic counts equal FlopCounterMode's for every width")

# %% [markdown]
# ## Measuring the time
#
# Now the wall clock: one forward pass of a batch of 32 maps through each layer, median of
# repeated runs, in PyTorch's default memory layout (NCHW) and in `channels_last` (NHWC), which
# some depthwise kernels prefer.

# %%
repeats = profile.timing_repeats
timings = []
for n in widths:
    x = torch.randn(32, n, d_f, d_f, device=device)
    layers = {"standard": standard_conv(d_k, n, n).to(device),
              "separable": separable_conv(d_k, n, n).to(device)}
    row = {"width": n}
    with torch.no_grad():
        for name, layer in layers.items():
            row[name] = median_seconds(lambda: layer(x), repeats=repeats)
            layer_cl = layer.to(memory_format=torch.channels_last)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            row[name + " channels_last"] = median_seconds(lambda: layer_cl(x_cl), repeats=repeats)
    timings.append(row)
print(f"batch 32, {d_f}x{d_f} maps, {d_k}x{d_k} kernels, {device}, median of {repeats} runs (ms)")
print(f"{'M=N':>5} {'standard':>9} {'separable':>10} {'std NHWC':>9} {'sep NHWC':>9} "
      f"{'speed-up':>9} {'FLOP cut':>9}")
for t, r in zip(timings, rows):
    best_sep = min(t["separable"], t["separable channels_last"])
    best_std = min(t["standard"], t["standard channels_last"])
    print(f"{t['width']:>5} {t['standard'] * 1e3:>9.3f} {t['separable'] * 1e3:>10.3f} "
          f"{t['standard channels_last'] * 1e3:>9.3f} {t['separable channels_last'] * 1e3:>9.3f} "
          f"{best_std / best_sep:>8.1f}x {1 / r['ratio']:>8.1f}x")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(widths, [1 / r["ratio"] for r in rows], "o-", label="multiply-adds: standard / separable")
ax.plot(widths, [t["standard"] / t["separable"] for t in timings], "s-", label="time, NCHW")
ax.plot(widths, [t["standard channels_last"] / t["separable channels_last"] for t in timings], "^-",
        label="time, channels_last")
ax.axhline(1, color="grey", lw=0.8)
ax.set_xscale("log", base=2)
ax.set_xlabel("channels M = N")
ax.set_ylabel("standard / separable")
below = sum(t["standard"] / t["separable"] < 1 / r["ratio"] for t, r in zip(timings, rows))
ax.set_title(f"Measured NCHW speed-up below the FLOP cut at {below} of {len(rows)} widths "
             f"({device.type})")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Why the speed-up is smaller than the FLOP cut
#
# A depthwise convolution does only $D_K^2 = 9$ multiply-adds per value it reads and writes:
# each output pixel of channel $m$ reads a 3×3 window of channel $m$ alone. A standard
# convolution reuses every input value across all $N$ output channels, $9N$ multiply-adds per
# value, so it can keep the arithmetic units busy from cache. The depthwise part is therefore
# **memory-bound**: its time is set by moving the feature map through memory, not by its
# arithmetic, and it takes a share of the runtime far above its share of the FLOPs. The
# pointwise part is a plain matrix product and runs efficiently, but the layer as a whole pays
# for two passes over the feature map instead of one, plus a second kernel launch. Optimised
# libraries close part of the gap (fused or NHWC depthwise kernels), which is why the layout
# matters above. The FLOP ratio is a bound on the speed-up, not a prediction of it.
#
# ## The paper's whole network
#
# Counted the same way, one forward pass of one 32×32 image through the 94,372-parameter
# DS-ResNet (our reading of the architecture, notebook 2):

# %%
model = DSResNet().eval()
print(f"DSResNet: {count_parameters(model):,} parameters, "
      f"{counted_macs(model, (1, 3, 32, 32)) / 1e6:.1f} M multiply-adds per image")

# %% [markdown]
# ## Summary
#
# - Eq. (2) is exact: our analytic counts equal PyTorch's FLOP counter for every width, and the
#   cost ratio is $1/N + 1/D_K^2$ (its values at the paper's widths are printed below).
# - The measured speed-up on this device is printed above, beside the FLOP cut; where it falls
#   short, the memory-bound depthwise part is why. How far it falls short depends on the hardware
#   and on the library's depthwise kernels, so re-run this notebook on your own device before
#   quoting it.
# - The parameter saving is real and exact; the time saving depends on the hardware and the
#   library's kernels.

# %%
paper_widths = ", ".join(f"{n}: 1/{1 / cost_ratio(d_k, n):.1f}" for n in (32, 64, 96, 128))
print(f"cost ratio 1/N + 1/9 at the paper's widths {paper_widths}")
print(f"profile {profile.name}, {device}: FLOP cut at width 128 = {1 / rows[3]['ratio']:.1f}x, "
      f"measured speed-up NCHW = {timings[3]['standard'] / timings[3]['separable']:.1f}x, "
      f"channels_last = "
      f"{timings[3]['standard channels_last'] / timings[3]['separable channels_last']:.1f}x; "
      f"the NCHW speed-up is below the FLOP cut at {below} of {len(rows)} widths")

# %% [markdown]
# ## Exercises
#
# 1. **Move the stride into the stem.** Eq. (2) is proportional to $D_F^2$. Predict how the
#    multiply-adds of the whole DS-ResNet change if every feature map were half as wide and
#    high (what a stride-2 stem would do), then measure it: a 16×16 input has that effect.
# 2. **Bigger kernels.** With `cost_ratio`, predict the saving of a separable layer at N = 128
#    for 3×3, 5×5 and 7×7 kernels. Why does the saving grow with the kernel?
#
# The starter runs as it is; change it to answer both.

# %%
full = counted_macs(DSResNet(), (1, 3, 32, 32))
half = counted_macs(DSResNet(), (1, 3, 16, 16))
print(f"DS-ResNet multiply-adds: {full:,} at 32x32, {half:,} at 16x16 ({half / full:.3f} of them)")
for d_k in (3, 5, 7):
    print(f"{d_k}x{d_k}, N = 128: a separable layer costs {cost_ratio(d_k, 128):.3f} "
          f"of a standard one")

# %% [markdown]
# ### Solutions
#
# Worked answers, computed at this profile from the cells above. The book folds them away: try
# the exercises first, then click to show.

# %% tags=["hide-cell"]
head = DSResNet().head
fixed = head.in_features * head.out_features  # the classifier head does not scale with D_F^2
predicted = (full - fixed) / 4 + fixed
print(f"1. Eq. (2) scales with D_F^2, so half the width and height leaves 1/4 of the "
      f"convolutions' multiply-adds; with the head's {fixed:,}, which do not scale, that "
      f"predicts {predicted:,.0f} of {full:,}. FlopCounterMode counts {half:,} "
      f"({half / predicted - 1:+.1%} from the prediction).")
savings = ", ".join(f"{1 / cost_ratio(d_k, 128):.1f}x ({d_k}x{d_k})" for d_k in (3, 5, 7))
print(f"2. At N = 128 a separable layer saves {savings}. Its cost ratio is 1/N + 1/D_K^2: "
      f"the depthwise part pays the kernel's D_K^2 taps once per channel, a standard layer "
      f"N times, so the bigger the kernel, the bigger the saving, up to N.")
