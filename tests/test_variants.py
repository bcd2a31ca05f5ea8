"""The paper's "future work" at its parameter budgets: a MobileNetV2 of inverted residuals
(<= 94,372 parameters) and a generator with skip-layer excitation and depthwise-separable
convolutions (G + D <= 942,812), and the seed-aware spread their comparisons need."""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from nbcode.book.verdicts import seed_spread, seeded_gan_verdict, seeded_recipe_verdict
from nbcode.cost import count_parameters
from nbcode.gan import Discriminator
from nbcode.gan_recipe import GAN_RECIPES, GANSettings
from nbcode.mobilenet import InvertedResidual, MobileNetV2Small
from nbcode.runs.classifier import build_classifier, load_trained_classifier, train_classifier
from nbcode.runs.gan import load_trained_generator, train_gan
from nbcode.runs.profiles import get_profile
from nbcode.sle_gan import SkipLayerExcitation, SLEGenerator

TINY = dataclasses.replace(get_profile("smoke"), name="tiny", classifier_steps=8, classifier_batch=32, eval_every=4,
                           eval_images=64, train_limit=512, gan_iterations=4, gan_batch=8)


def test_the_mobilenet_fits_the_ds_resnets_budget_at_100_classes():
    assert count_parameters(MobileNetV2Small(num_classes=100)) == 93_180 <= 94_372


def test_an_inverted_residual_adds_its_input_only_where_shapes_match():
    torch.manual_seed(0)
    same, strided = InvertedResidual(8, 8, 4, 1).eval(), InvertedResidual(8, 16, 4, 2).eval()
    x = torch.randn(2, 8, 8, 8)
    assert torch.allclose(same(x), x + same.block(x))
    assert strided(x).shape == (2, 16, 4, 4) and not strided.residual
    assert not isinstance(same.block[-1][-1], torch.nn.ReLU6)  # the projection is linear


def test_the_mobilenet_classifies_and_trains():
    model = MobileNetV2Small(num_classes=10)
    logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_the_sle_gan_fits_table_1s_budget():
    total = count_parameters(SLEGenerator(num_classes=100)) + count_parameters(Discriminator(num_classes=100))
    assert total == 941_844 <= 942_812


def test_skip_layer_excitation_scales_each_channel_by_a_gate_in_0_1():
    torch.manual_seed(0)
    sle = SkipLayerExcitation(6, 4)
    low, high = torch.randn(2, 6, 8, 8), torch.rand(2, 4, 16, 16) + 1
    out = sle(low, high)
    gates = out / high
    assert torch.allclose(gates, gates[:, :, :1, :1].expand_as(gates), atol=1e-6)  # one gate per channel
    assert ((gates > 0) & (gates < 1)).all()


def test_the_sle_generator_draws_images_and_checks_its_labels():
    g = SLEGenerator(num_classes=10)
    images = g(torch.randn(4, 128), torch.tensor([0, 1, 2, 9]))
    assert images.shape == (4, 3, 32, 32) and images.abs().max() <= 1
    with pytest.raises(ValueError, match="pass labels"):
        g(torch.randn(4, 128))
    with pytest.raises(ValueError, match="unconditional"):
        SLEGenerator(num_classes=0)(torch.randn(2, 128), torch.tensor([0, 1]))


def test_seed_spread_pools_the_between_seed_variance_with_the_sampling_variance():
    difference, spread = seed_spread([(10.0, 1.0), (12.0, 1.0)], [(15.0, 1.0), (17.0, 1.0)])
    assert difference == 5.0
    # pooled between-seed variance: (2 + 2) / 2 = 2; per run 2 + 1 = 3; spread sqrt(3/2 + 3/2)
    assert math.isclose(spread, math.sqrt(3.0))


def test_seeds_that_agree_by_chance_keep_the_sampling_spread():
    _, spread = seed_spread([(10.0, 4.0), (10.0, 4.0)], [(11.0, 4.0), (11.0, 4.0)])
    assert math.isclose(spread, math.sqrt(4.0 / 2 + 4.0 / 2))


def test_one_run_per_arm_cannot_measure_the_seed_term():
    with pytest.raises(ValueError, match="two or more seeds"):
        seed_spread([(1.0, 0.1)], [(2.0, 0.1)])


def classifier(seed: int, accuracy: float) -> dict:
    return {"seed": seed, "final": {"validation": {"mean": accuracy, "std": 0.0, "evals": 1}},
            "eval_images": {"validation": 1_000_000}, "dataset": "cifar10", "profile": "smoke", "steps": 30,
            "batch": 64}


def test_seed_noise_is_not_called_better():
    # within each arm the seed moves accuracy by 10 points; the arms differ by 2
    baseline = [classifier(0, 0.40), classifier(1, 0.50)]
    other = [classifier(0, 0.42), classifier(1, 0.52)]
    decided = seeded_recipe_verdict(baseline, other, ("the DS-ResNet", "the MobileNetV2"))
    assert not decided.conclusive and "inconclusive" in decided.text and "seed term included" in decided.text
    clear = seeded_recipe_verdict(baseline, [classifier(0, 0.80), classifier(1, 0.81)],
                                  ("the DS-ResNet", "the MobileNetV2"))
    assert clear.conclusive and clear.difference > 0 and "the MobileNetV2 is better" in clear.text


def test_the_gan_verdict_with_seeds_prefers_the_lower_kid():
    def scores(kid: float) -> dict:
        return {"kid_mean": kid, "kid_std": 0.001, "fid": 100 * kid, "n_generated": 500, "n_reference": 500}

    decided = seeded_gan_verdict([scores(0.05), scores(0.051)], [scores(0.10), scores(0.102)],
                                 ("the SLE generator", "Table 1's generator"))
    assert decided.conclusive and decided.difference < 0 and "the SLE generator is better" in decided.text


def test_a_mobilenet_run_is_its_own_run_and_loads_back_as_a_mobilenet(tmp_path):
    mobile = train_classifier("improved", TINY, network="mobilenetv2", dataset="synthetic", runs_dir=tmp_path,
                              progress=False)
    paper = train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert mobile["run"].startswith("mobilenetv2-x1-improved-") and paper["run"].startswith("dsresnet-x1-improved-")
    assert mobile["network"] == "mobilenetv2" and mobile["parameters"] == count_parameters(MobileNetV2Small(100))
    model = load_trained_classifier(mobile, tmp_path)
    assert isinstance(model, MobileNetV2Small) and not model.training


def test_a_network_or_width_that_does_not_exist_is_refused_before_any_training(tmp_path):
    with pytest.raises(ValueError, match="valid: dsresnet, mobilenetv2"):
        build_classifier("resnet50", 100)
    with pytest.raises(ValueError, match="one width"):
        train_classifier("improved", TINY, network="mobilenetv2", width_factor=2, dataset="synthetic",
                         runs_dir=tmp_path, progress=False)
    assert not (tmp_path / "classifier").exists()
    result = subprocess.run([sys.executable, "-m", "nbcode.runs.classifier", "--network", "mobilenetv2",
                             "--width-factor", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "one width" in result.stderr


def test_an_sle_gan_run_trains_against_table_1s_discriminator_and_loads_back(tmp_path):
    sle = train_gan(dataclasses.replace(GAN_RECIPES["improved"], generator="sle"), TINY, dataset="synthetic",
                    runs_dir=tmp_path, progress=False)
    table1 = train_gan(GAN_RECIPES["improved"], TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert sle["run"].startswith("gan-sle-conditional-aw-improved-") and sle["run"] != table1["run"]
    assert sle["parameters"]["discriminator"] == table1["parameters"]["discriminator"]
    assert sle["parameters"]["generator"] == count_parameters(SLEGenerator(100)) < table1["parameters"]["generator"]
    g = load_trained_generator(sle, tmp_path)
    assert isinstance(g, SLEGenerator) and g(torch.randn(2, 128), torch.tensor([0, 1])).shape == (2, 3, 32, 32)


def test_an_unknown_generator_is_an_error_naming_the_valid_ones():
    with pytest.raises(ValueError, match="valid: table1, sle"):
        GANSettings(generator="stylegan")
