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
# # 5. The conditional SN-GAN: class-conditional batch norm and the projection discriminator
#
# **Question.** How does the paper's GAN use the class label — in the generator through
# conditional batch norm, in the discriminator through a projection — and what exactly is the
# 942,812-parameter architecture of its Table 1?

# %%
import torch

from nbcode.book.display import print_warnings_as_notes, show_source
from nbcode.cost import count_parameters
from nbcode.gan import Discriminator, Generator, parameters_per_layer
from nbcode.normalization import ConditionalBatchNorm2d
from nbcode.projection import ProjectionHead
from nbcode.runs.profiles import describe, get_profile, pick_device

torch.manual_seed(0)
print_warnings_as_notes()  # notices as plain lines, without the paths of this machine
profile = get_profile()
device = pick_device()
print(describe(profile, device))

# %% [markdown]
# ## The generator hears the label through its batch norms
#
# Batch norm standardises each channel and then applies a learned gain $\gamma$ and bias
# $\beta$. *Conditional* batch norm (de Vries et al., 2017) keeps one $(\gamma, \beta)$ pair per
# class and picks it by the label: $\text{CBN}(x, y) = \gamma_y \odot \text{BN}(x) + \beta_y$.
# The label thus rescales and shifts every feature map at every resolution, at a cost of
# $2C$ numbers per class and layer. We initialise every class to $\gamma = 1, \beta = 0$, so a
# fresh generator ignores the label until training teaches it otherwise:

# %%
show_source(ConditionalBatchNorm2d)

# %%
g = Generator().eval()
z = torch.randn(1, 128).repeat(3, 1)
with torch.no_grad():
    same_noise = g(z, torch.tensor([0, 50, 99]))
print("max difference between classes 0, 50, 99 for the same noise, at initialisation:",
      (same_noise - same_noise[0]).abs().max().item())

# %% [markdown]
# ## The discriminator projects its features onto the label
#
# The projection discriminator (Miyato & Koyama, 2018) scores an image $x$ with label $y$ as
# eq. (7), $f(x, y) = y^\top V \phi(x) + \psi(\phi(x))$: an unconditional score $\psi$ plus the
# inner product of the features $\phi(x)$ with a learned embedding $V_y$ of the class. With $y$
# one-hot, $y^\top V$ is row $y$ of $V$, so the code is a lookup and a dot product. Compared
# with concatenating the label to the input, it adds one vector per class and makes "is this a
# good image of class $y$" a direct question.

# %%
show_source(ProjectionHead)

# %% [markdown]
# ## Table 1, layer by layer
#
# Table 1 of the paper lists, for the generator, four "ConvTranspose2D up" rows of 128, 64, 64
# and 32 channels, each followed by CBN + LeakyReLU, and a Tanh output; for the discriminator,
# seven "SN Conv2D down" rows of 3, 16, 32, 32, 64, 64 and 128 channels, then "FC to Scalar" and
# "FC + Projection". It gives no kernel sizes, strides, paddings or biases, so the following are
# **our readings**, not the paper's:
#
# - *Generator.* The first row (128) is a linear projection of $z$ to a 4×4×128 map (a
#   transposed convolution of a 1×1 input to 4×4 is the same map); three stride-2 transposed
#   convolutions with 4×4 kernels then take 4×4 to 32×32, and a 3×3 convolution to RGB, which
#   the table does not list, feeds the Tanh.
# - *Discriminator.* A row of 3 output channels right after the RGB input would throw away most
#   of what the next layers could use, and seven stride-2 layers would shrink 32×32 below one
#   pixel: the table's "3" reads best as the input's channels and "down" as the direction of the
#   stack. We give the first two convolutions 16 channels and alternate 3×3 stride-1 with 4×4
#   stride-2 kernels, the layout of the standard CNN discriminator of Miyato et al. (2018), so
#   that three of the seven halve the resolution (32 → 4). With these readings the count comes
#   within a few hundred parameters of the paper's total (below), which is why we chose them.

# %%
show_source(Generator.__init__)

# %%
show_source(Discriminator.__init__)

# %%
for title, model in (("generator", Generator()), ("discriminator", Discriminator())):
    print(f"{title}:")
    for name, kind, count in parameters_per_layer(model):
        print(f"  {name:<28} {kind:<18} {count:>9,}")
    print(f"  {'total':<47} {count_parameters(model):>9,}\n")

# %%
PAPER_TOTAL = 942_812  # the paper's Results section
conditional = count_parameters(Generator()) + count_parameters(Discriminator())
unconditional = count_parameters(Generator(0)) + count_parameters(Discriminator(0))
difference = PAPER_TOTAL - conditional
print(f"conditional GAN:   {conditional:,} parameters (the paper reports {PAPER_TOTAL:,}: "
      f"a difference "
      f"of {difference:,}, {100 * abs(difference) / PAPER_TOTAL:.2f}% of the model)")
print(f"unconditional GAN: {unconditional:,} parameters "
      f"(plain affine BatchNorm, no class embedding)")
print(f"the difference is {difference / 100:g} x 100 classes: "
      f"{'a whole number of per-class values' if difference % 100 == 0 else 'not per-class'}")

# %% [markdown]
# ## Where the difference from the paper's count may be
#
# The paper lists no kernel sizes, biases or where the class embedding sits, so the difference
# printed above cannot be pinned down. When it is a whole multiple of the 100 classes, one more
# per-class $(\gamma, \beta)$ pair of a single channel, or a per-class bias in two places, would
# close it; other readings of the kernel sizes would move the count by thousands.
#
# ## Summary
#
# - The label enters the generator as per-class gains and biases of every batch norm (CBN),
#   initialised so that training starts from an unconditional generator.
# - The discriminator adds $\langle V_y, \phi(x) \rangle$ to an unconditional score (eq. 7).
# - Our reading of Table 1 has the parameters printed above; the unconditional variant, for the
#   paper's FID 32.00 comparison, drops the class embeddings.
#
# The cell below answers the chapter's question from the models above.

# %%
g_label = count_parameters(Generator()) - count_parameters(Generator(0))
fewer_or_more = "fewer" if difference > 0 else "more"
d_label = count_parameters(Discriminator()) - count_parameters(Discriminator(0))
print(f"The label costs {g_label:,} parameters in the generator (per-class CBN gains and biases in "
      f"{len(Generator().norms)} batch norms) and {d_label:,} in the discriminator (the "
      f"projection's "
      f"class embedding V); our reading of Table 1 has {conditional:,} parameters in all, "
      f"{abs(difference):,} {fewer_or_more} than the paper's {PAPER_TOTAL:,}.")

# %% [markdown]
# ## Exercises
#
# 1. **What does conditioning cost?** Each conditional batch norm holds 2C numbers per class.
#    Predict the parameter difference between `Generator(num_classes=100)` and
#    `Generator(num_classes=0)` from the generator's widths, then check it.
# 2. **CIFAR-10.** How many parameters does the projection discriminator's class embedding hold
#    with 10 classes instead of 100? What share of the discriminator is it in each case?
#
# The starter runs as it is; change it to answer both.

# %%
conditional, plain = Generator(num_classes=100), Generator(num_classes=0)
predicted = sum(2 * width * 100 for width in conditional.widths)
print(f"generator: {count_parameters(conditional):,} conditional, "
      f"{count_parameters(plain):,} plain; "
      f"difference {count_parameters(conditional) - count_parameters(plain):,} "
      f"(CBN embeddings alone: {predicted:,}; what else differs?)")
for classes in (100, 10):
    with_classes = count_parameters(Discriminator(num_classes=classes))
    print(f"discriminator with {classes} classes: {with_classes:,} "
          f"parameters ({count_parameters(Discriminator(num_classes=0)):,} unconditional)")

# %% [markdown]
# ### Solutions
#
# Worked answers, computed at this profile from the cells above. The book folds them away: try
# the exercises first, then click to show.

# %% tags=["hide-cell"]
difference = count_parameters(conditional) - count_parameters(plain)
plain_affine = sum(2 * width for width in plain.widths)  # gamma and beta of each plain norm
explained = " (all of it)" if predicted - plain_affine == difference else ""
print(f"1. The conditional generator has {difference:,} more parameters. Its embeddings hold "
      f"{predicted:,}; the plain generator's batch norms have their own gamma and beta "
      f"({plain_affine:,}), which conditional batch norm replaces: {predicted:,} - "
      f"{plain_affine:,} = {predicted - plain_affine:,}{explained}.")
unconditional = count_parameters(Discriminator(num_classes=0))
for classes in (100, 10):
    embedding = count_parameters(Discriminator(num_classes=classes)) - unconditional
    share = embedding / (embedding + unconditional)
    print(f"2. With {classes} classes the class embedding holds {embedding:,} parameters, "
          f"{share:.1%} of the discriminator.")
