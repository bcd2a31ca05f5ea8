import dataclasses

import pytest
import torch

from nbcode.runs.profiles import PROFILES, describe, get_profile, pick_device


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("NBCODE_PROFILE", "paper")
    assert get_profile().name == "paper"
    assert get_profile("quick").name == "quick"  # an explicit argument wins


def test_tests_run_at_smoke_profile():
    assert get_profile().name == "smoke"


def test_paper_budgets_are_the_papers():
    paper = PROFILES["paper"]
    assert (paper.classifier_steps, paper.classifier_batch) == (10_000, 512)
    assert paper.gan_iterations == 50_000
    assert paper.fid_samples == 10_000


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, quick, paper"):
        get_profile("fast")


def test_device_and_description():
    device = pick_device()
    assert device.type in ("cuda", "mps", "cpu")
    text = describe(get_profile("smoke"), torch.device("cpu"))
    assert "\n" not in text and text.startswith("profile smoke (set NBCODE_PROFILE to change) on cpu")
    assert "ResNet 30 x 64 steps" in text and "GAN 20 x 32 iterations" in text and "32 vs 32 images" in text


def test_the_comparison_budget_keeps_the_batch():
    from nbcode.runs.profiles import comparison_budget
    for profile in PROFILES.values():
        smaller = comparison_budget(profile)
        assert smaller.classifier_steps == profile.comparison_steps <= profile.classifier_steps
        assert smaller.classifier_batch == profile.classifier_batch
        assert smaller.eval_every == profile.comparison_eval_every <= smaller.classifier_steps
    assert comparison_budget(PROFILES["paper"]) == PROFILES["paper"]  # the paper's x2 at full budget


@pytest.mark.parametrize("changes", [{"classifier_steps": 0}, {"gan_iterations": -4}, {"classifier_batch": 0},
                                     {"eval_every": 0}, {"fid_samples": 0}, {"eval_images": 0},
                                     {"train_limit": 0}, {"gan_batch": 2.5}])
def test_a_profile_refuses_a_budget_that_is_not_a_positive_whole_number(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        dataclasses.replace(get_profile("smoke"), **changes)
