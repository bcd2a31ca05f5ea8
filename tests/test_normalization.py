import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from nbcode.normalization import ConditionalBatchNorm2d, spectral_norm


def sn_of(layer: nn.Module):
    return layer.parametrizations.weight[0]


@pytest.mark.parametrize(
    "make", [lambda: nn.Linear(20, 30), lambda: nn.Conv2d(8, 16, 3), lambda: nn.Embedding(10, 12)]
)
def test_sigma_converges_to_the_largest_singular_value(make):
    # Build the layer after seeding: power iteration converges at the rate (sigma2 / sigma1)^2 per
    # step, so the weights must not depend on whatever drew random numbers before this test.
    torch.manual_seed(0)
    layer = spectral_norm(make())
    for _ in range(500):
        layer.weight  # each access in training mode runs one power-iteration step
    raw = layer.parametrizations.weight.original.detach().flatten(1)  # conv: (out, in*k*k)
    exact = torch.linalg.matrix_norm(raw, 2)
    assert abs(sn_of(layer).sigma.item() - exact.item()) / exact.item() < 1e-4
    assert abs(torch.linalg.matrix_norm(layer.weight.detach().flatten(1), 2).item() - 1) < 1e-4


@pytest.mark.parametrize("make", [lambda: nn.Linear(12, 7), lambda: nn.Conv2d(4, 6, 3)])
def test_matches_torch_spectral_norm_step_by_step_from_the_same_u(make):
    torch.manual_seed(1)
    ours = spectral_norm(make())
    theirs = torch_spectral_norm(make())
    with torch.no_grad():
        theirs.parametrizations.weight.original.copy_(ours.parametrizations.weight.original)
    sn_of(ours).u = theirs.parametrizations.weight[0]._u.clone()
    sn_of(ours).v = theirs.parametrizations.weight[0]._v.clone()
    for step in range(5):
        torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-6, atol=1e-7)
        with torch.no_grad():  # the weights change a little, as under an optimiser
            delta = 0.01 * torch.randn_like(ours.parametrizations.weight.original)
            ours.parametrizations.weight.original.add_(delta)
            theirs.parametrizations.weight.original.add_(delta)


def test_no_power_iteration_in_eval_mode():
    layer = spectral_norm(nn.Linear(5, 5)).eval()
    u = sn_of(layer).u.clone()
    layer(torch.randn(2, 5))
    assert torch.equal(sn_of(layer).u, u)
    layer.train()
    layer(torch.randn(2, 5))
    assert not torch.equal(sn_of(layer).u, u)


def test_gradient_flows_to_the_raw_weight():
    layer = spectral_norm(nn.Linear(4, 3))
    layer(torch.randn(5, 4)).sum().backward()
    assert layer.parametrizations.weight.original.grad is not None


def test_conditional_batch_norm_with_one_class_equals_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(8, 6, 5, 5) * 3 + 1
    cbn, bn = ConditionalBatchNorm2d(6, num_classes=1), nn.BatchNorm2d(6)
    torch.testing.assert_close(cbn(x, torch.zeros(8, dtype=torch.long)), bn(x))
    torch.testing.assert_close(cbn.bn.running_mean, bn.running_mean)
    torch.testing.assert_close(cbn.bn.running_var, bn.running_var)
    cbn.eval(), bn.eval()
    torch.testing.assert_close(cbn(x, torch.zeros(8, dtype=torch.long)), bn(x))


def test_conditional_batch_norm_uses_each_class_gain_and_bias():
    cbn = ConditionalBatchNorm2d(2, num_classes=3)
    with torch.no_grad():
        cbn.embed.weight[2] = torch.tensor([2.0, 3.0, 0.5, -1.0])  # gains (2, 3), biases (0.5, -1)
    x = torch.randn(4, 2, 3, 3)
    labels = torch.tensor([0, 2, 2, 1])
    plain = cbn.bn(x)
    out = cbn(x, labels)
    torch.testing.assert_close(out[0], plain[0])
    torch.testing.assert_close(out[1], plain[1] * torch.tensor([2.0, 3.0]).view(2, 1, 1) + torch.tensor([0.5, -1.0]).view(2, 1, 1))


def test_conditional_batch_norm_rejects_bad_input():
    cbn = ConditionalBatchNorm2d(4, num_classes=3)
    x = torch.randn(2, 4, 2, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        cbn(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="expected labels as a \\(2,\\) integer tensor"):
        cbn(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected x of shape \(B, 4, H, W\)"):
        cbn(torch.randn(2, 5, 2, 2), torch.tensor([0, 1]))


def test_transposed_convolutions_are_refused():
    with pytest.raises(TypeError, match="dim 1"):
        spectral_norm(nn.ConvTranspose2d(3, 4, 2))
