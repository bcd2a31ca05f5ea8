"""Hinge losses (the paper's eqs. 4-5) and the adaptive-weighted discriminator loss, eq. (6),
of Zadorozhnyy, Cheng & Ye, "Adaptive Weighted Discriminator for Training GANs" (CVPR 2021).

    loss_real, loss_fake = hinge_real(real_out), hinge_fake(fake_out)
    result = aw_discriminator_backward(discriminator, real_out, fake_out, loss_real, loss_fake)
    d_optimiser.step()                              # .grad holds w_r * g_r + w_f * g_f
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The constants of the aw paper's Algorithms 1 and 2, as in their public implementation.
ALPHA1 = 0.5   # below this mean real score, the real loss is behind
ALPHA2 = 0.75  # above this mean real score, the real loss is ahead
DELTA = 0.05   # margin between the real and fake scores
EPSILON = 0.05  # floor added to every weight
NORM_EPS = 1e-4  # added to squared gradient norms

# Which branch of the weight rule fired.
REAL_CONFLICT = "real behind, gradients conflict"
REAL_ALIGNED = "real behind, gradients agree"
FAKE_CONFLICT = "real ahead, gradients conflict"
FAKE_ALIGNED = "real ahead, gradients agree"
BALANCED = "balanced"
AW_CASES = (REAL_CONFLICT, REAL_ALIGNED, FAKE_CONFLICT, FAKE_ALIGNED, BALANCED)


# The paper's eq. (4) writes the discriminator's hinge objective in the form D *maximises*:
#     L_D = E[min(0, -1 + D(x))] + E[min(0, -1 - D(G(z)))].
# Since min(0, -1 + s) = -max(0, 1 - s), that is -(L_r + L_f): the two functions below are the
# terms D *minimises*, eq. (4) with its sign flipped, and the L_r, L_f that eq. (6) weights.


def hinge_real(real_out: torch.Tensor) -> torch.Tensor:
    """L_r = E[max(0, 1 - D(x))] over real images (minus the first term of eq. 4).
    real_out: (B,) raw scores. Returns a scalar."""
    return F.relu(1 - real_out).mean()  # = -E[min(0, -1 + D(x))]


def hinge_fake(fake_out: torch.Tensor) -> torch.Tensor:
    """L_f = E[max(0, 1 + D(G(z)))] over generated images (minus the second term of eq. 4).
    fake_out: (B,) raw scores."""
    return F.relu(1 + fake_out).mean()  # = -E[min(0, -1 - D(G(z)))]


def hinge_generator(fake_out: torch.Tensor) -> torch.Tensor:
    """L_G = -E[D(G(z))], eq. (5). fake_out: (B,) raw scores of generated images."""
    return -fake_out.mean()  # eq. (5)


@dataclass(frozen=True)
class AdaptiveWeights:
    """The outcome of one aw step: the two weights, the case that fired and its inputs."""

    w_real: float
    w_fake: float
    case: str
    real_score: float  # rs = mean sigmoid(D(x))
    fake_score: float  # fs = mean sigmoid(D(G(z)))
    dot: float         # g_r . g_f


def adaptive_weights(g_real: torch.Tensor, g_fake: torch.Tensor, real_score: float, fake_score: float,
                     normalized: bool = True) -> AdaptiveWeights:
    """The weights w_r, w_f of eq. (6), by the aw paper's Algorithm 1 (normalized) or 2 (not).

    Args:
        g_real, g_fake: (P,) gradients of L_r and L_f with respect to all discriminator parameters.
        real_score, fake_score: rs = mean sigmoid(D(x)) and fs = mean sigmoid(D(G(z))).
        normalized: Algorithm 1; False gives Algorithm 2, where every 1/||g|| factor becomes 1.
    """
    # ||g_r|| and ||g_f|| with 1e-4 inside the root; the rule branches on these three numbers, so
    # they come to the host, all in one transfer (one wait for a GPU instead of three)
    dot, norm_real, norm_fake = torch.stack([torch.dot(g_real, g_fake), (g_real.square().sum() + NORM_EPS).sqrt(),
                                             (g_fake.square().sum() + NORM_EPS).sqrt()]).tolist()
    scale_real = 1 / norm_real if normalized else 1.0
    scale_fake = 1 / norm_fake if normalized else 1.0
    if real_score < ALPHA1 or real_score < fake_score - DELTA:
        # The real loss is behind: keep all of g_r; of g_f keep only what does not oppose g_r.
        if dot <= 0:
            w_real, w_fake, case = scale_real, -dot / (norm_fake ** 2) * scale_real, REAL_CONFLICT
        else:
            w_real, w_fake, case = scale_real, 0.0, REAL_ALIGNED
    elif real_score > ALPHA2 and real_score > fake_score - DELTA:
        # The real loss is ahead: keep all of g_f; of g_r keep only what does not oppose g_f.
        if dot <= 0:
            w_real, w_fake, case = -dot / (norm_real ** 2) * scale_fake, scale_fake, FAKE_CONFLICT
        else:
            w_real, w_fake, case = 0.0, scale_fake, FAKE_ALIGNED
    else:
        w_real, w_fake, case = scale_real, scale_fake, BALANCED
    return AdaptiveWeights(w_real + EPSILON, w_fake + EPSILON, case, real_score, fake_score, dot)


def flat_gradient(loss: torch.Tensor, parameters: list[nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d p for every p, zeros for parameters the loss does not reach; keeps the graph."""
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, parameters)]


def aw_discriminator_backward(discriminator: nn.Module, real_out: torch.Tensor, fake_out: torch.Tensor,
                              loss_real: torch.Tensor, loss_fake: torch.Tensor,
                              normalized: bool = True) -> AdaptiveWeights:
    """Set every discriminator parameter's .grad to w_r * g_r + w_f * g_f (eq. 6); return the weights.

    g_r and g_f are the gradients of `loss_real` and `loss_fake` with respect to all trainable
    parameters of `discriminator`, each seen as one flat vector; the weights are constants (no
    gradient flows through them). Each loss is differentiated once, so nothing is counted twice.
    Existing .grad values are replaced, not added to. Call the optimiser's step() afterwards.

    Args:
        real_out: (B,) raw scores D(x) of real images.
        fake_out: (B,) raw scores D(G(z)) of generated images (detach G's output first).
        loss_real, loss_fake: the scalars L_r and L_f computed from them.
    """
    parameters = [p for p in discriminator.parameters() if p.requires_grad]
    grads_real = flat_gradient(loss_real, parameters)
    grads_fake = flat_gradient(loss_fake, parameters)
    real_score, fake_score = torch.sigmoid(torch.stack([real_out.detach(), fake_out.detach()])).mean(1).tolist()
    weights = adaptive_weights(torch.cat([g.flatten() for g in grads_real]),
                               torch.cat([g.flatten() for g in grads_fake]),
                               real_score, fake_score, normalized)
    for p, g_r, g_f in zip(parameters, grads_real, grads_fake):
        p.grad = weights.w_real * g_r + weights.w_fake * g_f
    return weights
