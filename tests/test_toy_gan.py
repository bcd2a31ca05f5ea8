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
    run = train_toy_gan(loss, steps=5, seed=0, batch=32, n_samples=50)
    # three spectrally normalised layers: one round each when registered (torch's parametrize calls
    # the parametrisation once), then one round each per iteration (it was two before the fix)
    assert sum(calls) == 3 + 5 * 3
    assert run.samples.shape == (50, 2) and len(run.cases) == (5 if loss == "aw" else 0)
    modes, share = mode_coverage(run.samples)
    assert 0 <= modes <= 8 and 0.0 <= share <= 1.0


def test_the_coverage_verdict_follows_the_numbers():
    from nbcode.book.verdicts import coverage_verdict
    assert coverage_verdict([4, 5, 4], [8, 8, 7], 100).text.endswith("aw covers more modes at this budget.")
    assert coverage_verdict([8, 8, 7], [4, 5, 4], 100).text.endswith("hinge covers more modes at this budget.")
    assert coverage_verdict([4, 8, 2], [6, 3, 7], 100).text.endswith("inconclusive at this budget.")
    assert coverage_verdict([4], [8], 100).text.endswith("inconclusive at this budget.")  # one seed: no spread
    assert not coverage_verdict([3, 5], [3, 5], 100).conclusive  # identical seeds: no difference, no answer


def test_the_verdict_rule_needs_twice_the_spread():
    from nbcode.book.verdicts import verdict
    assert verdict("m", 2.1, 1.0, "better").text == "m: better."
    assert verdict("m", -1.9, 1.0, "worse").text == "m: inconclusive at this budget."
    assert verdict("m", 5.0, float("inf"), "better").text == "m: inconclusive at this budget."
    assert verdict("m", float("nan"), 1.0, "better").text == "m: inconclusive at this budget."
    assert verdict("m", 0.0, 0.0, "better").text == "m: inconclusive at this budget."  # no difference, no spread


def test_a_verdict_is_data_as_well_as_text():
    from nbcode.book.verdicts import verdict
    v = verdict("improved - paper = +3.0 points", 3.0, 1.0, "better at this budget")
    assert (v.conclusive, v.difference, v.spread) == (True, 3.0, 1.0)
    assert str(v) == v.text == "improved - paper = +3.0 points: better at this budget."
    assert not verdict("m", -1.0, 1.0, "worse").conclusive
