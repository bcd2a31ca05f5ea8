"""The toy GAN of notebooks 3 and 4: one power-iteration step per training iteration, as in the
real GAN's `gan_iteration`, so notebook 3 tests the paper's "one iteration per step"."""
import pytest

from nbcode.normalization import SpectralNorm
from nbcode.toy_gan import mode_coverage, train_toy_gan


@pytest.mark.parametrize("loss", ["hinge", "aw"])
def test_the_power_iteration_advances_once_per_iteration(monkeypatch, loss):
    calls = []
    real = SpectralNorm.power_iteration

    def counted(self, matrix, steps):
        calls.append(steps)
        return real(self, matrix, steps)

    monkeypatch.setattr(SpectralNorm, "power_iteration", counted)
    run = train_toy_gan(loss, steps=5, seed=0, batch=32, n_samples=50, progress=False)
    # three spectrally normalised layers: one round each when registered (torch's parametrize calls
    # the parametrisation once), then one round each per iteration (it was two before the fix)
    assert sum(calls) == 3 + 5 * 3
    assert run.samples.shape == (50, 2) and len(run.cases) == (5 if loss == "aw" else 0)
    modes, share = mode_coverage(run.samples)
    assert 0 <= modes <= 8 and 0.0 <= share <= 1.0


def test_the_coverage_verdict_follows_the_numbers():
    from nbcode.toy_gan import coverage_verdict
    assert coverage_verdict([4, 5, 4], [8, 8, 7], 100).endswith("aw covers more modes at this budget.")
    assert coverage_verdict([8, 8, 7], [4, 5, 4], 100).endswith("hinge covers more modes at this budget.")
    assert coverage_verdict([4, 8, 2], [6, 3, 7], 100).endswith("inconclusive at this budget.")
    assert coverage_verdict([4], [8], 100).endswith("inconclusive at this budget.")  # one seed: no spread


def test_the_verdict_rule_needs_twice_the_spread():
    from nbcode.verdict import verdict
    assert verdict("m", 2.1, 1.0, "better") == "m: better."
    assert verdict("m", -1.9, 1.0, "worse") == "m: inconclusive at this budget."
    assert verdict("m", 5.0, float("inf"), "better") == "m: inconclusive at this budget."
