import pytest
import torch
from torch import nn

from nbcode.losses import (
    AW_CASES,
    BALANCED,
    FAKE_ALIGNED,
    FAKE_CONFLICT,
    REAL_ALIGNED,
    REAL_CONFLICT,
    adaptive_weights,
    aw_discriminator_backward,
    hinge_fake,
    hinge_generator,
    hinge_real,
)
from nbcode.normalization import spectral_norm

G_REAL = torch.tensor([3.0, 4.0])
# g_f, rs, fs, (w_r, w_f) normalised, (w_r, w_f) non-normalised, case: the test vectors.
VECTORS = [
    ([-2.0, 1.0], 0.4, 0.5, (0.2499996, 0.12999824), (1.05, 0.449992), REAL_CONFLICT),
    ([1.0, 2.0], 0.4, 0.5, (0.2499996, 0.05), (1.05, 0.05), REAL_ALIGNED),
    ([-2.0, 1.0], 0.8, 0.3, (0.08577659, 0.49720912), (0.12999968, 1.05), FAKE_CONFLICT),
    ([1.0, 2.0], 0.8, 0.3, (0.05, 0.49720912), (0.05, 1.05), FAKE_ALIGNED),
    ([-2.0, 1.0], 0.6, 0.5, (0.2499996, 0.49720912), (1.05, 1.05), BALANCED),
]


@pytest.mark.parametrize("g_fake, rs, fs, normalised, plain, case", VECTORS)
def test_adaptive_weights_match_the_reference_vectors(g_fake, rs, fs, normalised, plain, case):
    for is_normalised, expected in ((True, normalised), (False, plain)):
        w = adaptive_weights(G_REAL, torch.tensor(g_fake), rs, fs, normalized=is_normalised)
        assert w.w_real == pytest.approx(expected[0], rel=1e-6)
        assert w.w_fake == pytest.approx(expected[1], rel=1e-6)
        assert w.case == case


def test_real_falling_behind_the_fake_score_counts_as_real_behind():
    w = adaptive_weights(G_REAL, torch.tensor([1.0, 2.0]), 0.6, 0.7)  # rs >= alpha1 but rs < fs - delta
    assert w.case == REAL_ALIGNED


def test_hinge_losses():
    out = torch.tensor([-2.0, 0.5, 3.0])
    assert hinge_real(out).item() == pytest.approx((3 + 0.5 + 0) / 3)
    assert hinge_fake(out).item() == pytest.approx((0 + 1.5 + 4) / 3)
    assert hinge_generator(out).item() == pytest.approx(-0.5)


def tiny_discriminator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(spectral_norm(nn.Linear(2, 16)), nn.LeakyReLU(0.1), spectral_norm(nn.Linear(16, 1)))


@pytest.mark.parametrize("normalized", [True, False])
def test_aw_backward_writes_the_weighted_sum_of_both_gradients(normalized):
    d = tiny_discriminator()
    real, fake = torch.randn(32, 2) + 2, torch.randn(32, 2) - 2
    out = d(torch.cat([real, fake])).squeeze(1)  # one call on both halves
    real_out, fake_out = out[:32], out[32:]
    loss_real, loss_fake = hinge_real(real_out), hinge_fake(fake_out)
    params = list(d.parameters())
    g_r = torch.autograd.grad(loss_real, params, retain_graph=True)
    g_f = torch.autograd.grad(loss_fake, params, retain_graph=True)
    w = aw_discriminator_backward(d, real_out, fake_out, loss_real, loss_fake, normalized=normalized)
    assert w.case in AW_CASES
    expected = adaptive_weights(torch.cat([g.flatten() for g in g_r]), torch.cat([g.flatten() for g in g_f]),
                                torch.sigmoid(real_out).mean().item(), torch.sigmoid(fake_out).mean().item(),
                                normalized)
    assert (w.w_real, w.w_fake, w.case) == (expected.w_real, expected.w_fake, expected.case)
    for p, a, b in zip(params, g_r, g_f):
        torch.testing.assert_close(p.grad, w.w_real * a + w.w_fake * b)


def test_aw_backward_replaces_stale_gradients_and_the_step_follows_them():
    d = tiny_discriminator()
    for p in d.parameters():
        p.grad = torch.full_like(p, 100.0)
    out = d(torch.randn(16, 2)).squeeze(1)
    w = aw_discriminator_backward(d, out[:8], out[8:], hinge_real(out[:8]), hinge_fake(out[8:]))
    before = [p.detach().clone() for p in d.parameters()]
    grads = [p.grad.clone() for p in d.parameters()]
    assert all(g.abs().max() < 100 for g in grads)
    torch.optim.SGD(d.parameters(), lr=0.1).step()
    for p, b, g in zip(d.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), b - 0.1 * g)
    assert w.w_real > 0 and w.w_fake > 0
