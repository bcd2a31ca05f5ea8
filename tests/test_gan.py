import copy
import dataclasses
import math

import pytest
import torch
from torch.nn.utils import parametrize

from nbcode.cost import count_parameters
from nbcode.gan import Discriminator, Generator, to_uint8
from nbcode.gan_recipe import GAN_RECIPES, GANSettings, build_gan, gan_ablations, gan_iteration, scheduled_rates
from nbcode.losses import adaptive_weights, hinge_fake, hinge_real
from nbcode.runs.gan import GANDivergedError, load_trained_generator, run_summary, train_gan
from nbcode.runs.profiles import get_profile

TINY = dataclasses.replace(get_profile("smoke"), name="tiny", gan_iterations=4, gan_batch=8, train_limit=256)


def test_parameter_counts_are_pinned():
    g, d = Generator(), Discriminator()
    assert count_parameters(g) == 552_195 and count_parameters(d) == 390_417
    assert count_parameters(g) + count_parameters(d) == 942_612  # the paper reports 942,812
    assert count_parameters(Generator(0)) + count_parameters(Discriminator(0)) == 680_788


def test_shapes_and_ranges():
    g, d = Generator(), Discriminator()
    labels = torch.tensor([0, 5, 99])
    images = g(torch.randn(3, 128), labels)
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
    assert d(images, labels).shape == (3,)
    assert to_uint8(images).dtype == torch.uint8


def test_bad_input_gets_clear_errors():
    g = Generator()
    with pytest.raises(ValueError, match="pass labels"):
        g(torch.randn(2, 128))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 100\)"):
        g(torch.randn(2, 128), torch.tensor([0, 100]))
    with pytest.raises(ValueError, match=r"expected z of shape \(B, 128\)"):
        g(torch.randn(2, 64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\)"):
        Discriminator()(torch.randn(2, 3, 28, 28), torch.tensor([0, 1]))


def test_one_training_iteration_changes_d_as_the_aw_rule_says():
    torch.manual_seed(0)
    g, d, _, _ = build_gan(100, 2e-4)
    g_copy, d_copy = copy.deepcopy(g), copy.deepcopy(d)  # same weights, same u and v, same BN statistics
    real, labels = torch.rand(8, 3, 32, 32) * 2 - 1, torch.randint(0, 100, (8,))
    lr = 0.01

    # The expected update, computed independently with the same random draws as gan_iteration.
    rng = torch.Generator().manual_seed(5)
    fake_labels = torch.randint(0, 100, (8,), generator=rng)
    with torch.no_grad():
        fake = g_copy(torch.randn(8, 128, generator=rng), fake_labels)
    params = list(d_copy.parameters())
    with parametrize.cached():
        real_out, fake_out = d_copy(real, labels), d_copy(fake, fake_labels)
        g_r = torch.cat([x.flatten() for x in torch.autograd.grad(hinge_real(real_out), params, retain_graph=True)])
        g_f = torch.cat([x.flatten() for x in torch.autograd.grad(hinge_fake(fake_out), params)])
    expected = adaptive_weights(g_r, g_f, torch.sigmoid(real_out).mean().item(), torch.sigmoid(fake_out).mean().item())

    before = torch.cat([p.detach().flatten() for p in d.parameters()])
    stats = gan_iteration(g, d, torch.optim.SGD(g.parameters(), lr=lr), torch.optim.SGD(d.parameters(), lr=lr),
                          real, labels, "aw", torch.Generator().manual_seed(5))
    after = torch.cat([p.detach().flatten() for p in d.parameters()])
    assert (stats["w_real"], stats["w_fake"], stats["case"]) == (expected.w_real, expected.w_fake, expected.case)
    torch.testing.assert_close(after - before, -lr * (expected.w_real * g_r + expected.w_fake * g_f),
                               rtol=1e-4, atol=1e-6)  # p + delta - p loses ~1e-7 to rounding
    assert not torch.equal(torch.cat([p.detach().flatten() for p in g.parameters()]),
                           torch.cat([p.detach().flatten() for p in g_copy.parameters()]))  # then G stepped
    u_after = {name: u for name, u in d.named_buffers() if name.endswith(".u")}
    u_copy = {name: u for name, u in d_copy.named_buffers() if name.endswith(".u")}
    assert len(u_after) == 9 and all(torch.equal(u_after[k], u_copy[k]) for k in u_copy)  # one power step only
    assert d.training and all(p.requires_grad for p in d.parameters())


def test_a_bf16_iteration_keeps_fp32_state_and_tracks_the_fp32_iteration():
    torch.manual_seed(0)
    nets = build_gan(10, 2e-4)
    twin = copy.deepcopy(nets)
    real, labels = torch.rand(16, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (16,))
    exact = gan_iteration(*nets, real, labels, "aw", torch.Generator().manual_seed(1))
    fast = gan_iteration(*twin, real, labels, "aw", torch.Generator().manual_seed(1), torch.bfloat16)
    assert fast["case"] == exact["case"]
    for key in ("d_loss", "g_loss", "real_score", "fake_score"):
        assert fast[key] == pytest.approx(exact[key], rel=0.02, abs=0.01), key
    state = [*twin[0].state_dict().values(), *twin[1].state_dict().values()]
    assert all(t.dtype in (torch.float32, torch.int64) for t in state)  # weights, BN and u, v stay fp32


def test_precision_is_part_of_the_gan_run_and_fp32_can_be_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("NBCODE_PRECISION", "fp32")
    record = train_gan(GANSettings(), TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert record["precision"] == "fp32" and "-fp32-" in record["run"]
    monkeypatch.setenv("NBCODE_PRECISION", "bf16")
    bf16 = train_gan(GANSettings(), TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert bf16["precision"] == "bf16" and "-bf16-" in bf16["run"]
    assert all(map(math.isfinite, bf16["log"]["d_loss"] + bf16["log"]["g_loss"]))


def test_decayed_rates_fall_linearly_to_zero_and_reach_the_optimisers(tmp_path):
    decayed = GANSettings(lr=2e-4, lr_d=4e-4, lr_decay=True)
    assert scheduled_rates(decayed, 0, 4) == (2e-4, 4e-4)
    assert scheduled_rates(decayed, 2, 4) == pytest.approx((1e-4, 2e-4))
    assert scheduled_rates(decayed, 3, 4) == pytest.approx((0.5e-4, 1e-4))  # the last step's: > 0
    assert scheduled_rates(GANSettings(lr=2e-4), 3, 4) == (2e-4, 2e-4)  # constant without decay
    record = train_gan(decayed, TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "gan" / record["run"] / "checkpoint.pt", weights_only=True)
    assert state["g_opt"]["param_groups"][0]["lr"] == pytest.approx(0.5e-4)
    assert state["d_opt"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert record["settings"]["lr_decay"] is True
    assert record["run"] != train_gan(dataclasses.replace(decayed, lr_decay=False), TINY, dataset="synthetic",
                                      runs_dir=tmp_path, progress=False)["run"]


@pytest.mark.parametrize("recipe", ["paper", "improved", "decayed", "augmented"])
def test_training_resumes_exactly_and_caches(tmp_path, recipe):
    # the decayed one sets its rates from the step alone, so a resumed run continues on the same
    # schedule; the augmented one draws its DiffAugment shifts from the step's generator too
    variants = {"decayed": dataclasses.replace(GAN_RECIPES["paper"], lr_decay=True),
                "augmented": dataclasses.replace(GAN_RECIPES["improved"], augment=("colour", "translation"))}
    settings = variants.get(recipe) or GAN_RECIPES[recipe]
    straight = train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path / "a", progress=False)
    train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path / "b", progress=False, stop_after=2)
    resumed = train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path / "b", progress=False)
    assert straight["log"]["d_loss"] == resumed["log"]["d_loss"]
    assert len(straight["log"]["case"]) == 4
    a = load_trained_generator(straight, tmp_path / "a")
    b = load_trained_generator(resumed, tmp_path / "b")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path / "a", progress=False) == straight
    assert list((tmp_path / "a" / "gan").glob("*/samples_000004.png"))


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = []

    def loss_that_explodes(fake_out):
        calls.append(1)
        return fake_out.mean() * (float("nan") if len(calls) > 6 else -1.0)

    monkeypatch.setattr("nbcode.gan_recipe.hinge_generator", loss_that_explodes)
    profile = dataclasses.replace(TINY, gan_iterations=10)  # a checkpoint every iteration
    with pytest.raises(GANDivergedError, match="diverged at iteration 7.*last good checkpoint is kept"):
        train_gan(GANSettings(loss="hinge"), profile, dataset="synthetic", runs_dir=tmp_path, progress=False)
    checkpoint = next((tmp_path / "gan").glob("*/checkpoint.pt"))
    assert torch.load(checkpoint, weights_only=True)["step"] == 6


def test_the_run_summary_is_computed_from_the_log():
    log = {"d_loss": [2.0] * 10 + [1.0] * 10, "g_loss": [0.0] * 20, "real_score": [0.6] * 20,
           "fake_score": [0.4] * 20, "w_real": [1.0] * 20, "w_fake": [0.5] * 20,
           "case": ["balanced"] * 15 + ["real behind, gradients conflict"] * 5}
    record = {"log": log, "dataset": "d", "profile": "p", "batch": 8, "settings": {"loss": "aw"}}
    summary = run_summary(record)
    assert "protected the real loss in 50%" in summary and "fake loss in 0%" in summary
    assert "(balanced) in 50%" in summary and "D loss 2.000 in the first tenth, 1.000 in the second half" in summary
    assert "w_r 1.00, w_f 0.50" in summary and "20 iterations x 8" in summary


def test_an_iteration_takes_the_latent_size_from_the_generator():
    g, d = Generator(num_classes=10, latent=64), Discriminator(num_classes=10)
    g_opt, d_opt = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    real, labels = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
    stats = gan_iteration(g, d, g_opt, d_opt, real, labels, "aw", torch.Generator().manual_seed(0))
    assert math.isfinite(stats["g_loss"])


@pytest.mark.parametrize("loss", ["AW", "wgan", ""])
def test_an_unknown_loss_name_is_an_error_naming_the_valid_ones(loss):
    g, d, g_opt, d_opt = build_gan(num_classes=10, lr=2e-4)
    real, labels = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="valid: aw, hinge"):
        gan_iteration(g, d, g_opt, d_opt, real, labels, loss, torch.Generator())
    with pytest.raises(ValueError, match="valid: aw, hinge"):
        GANSettings(loss=loss)


@pytest.mark.parametrize("changes", [{"ema": float("nan")}, {"ema": 1.0}, {"ema": 1.5}, {"ema": -0.1},
                                     {"lr": 0.0}, {"lr": -1e-4}, {"lr": float("inf")}, {"lr_d": 0.0},
                                     {"lr_d": float("nan")}, {"augment": ("flip",)}])
def test_gan_settings_are_validated_where_they_are_made(changes):
    with pytest.raises(ValueError):
        GANSettings(**changes)


def test_each_gan_ablation_undoes_exactly_one_change():
    improved, paper = dataclasses.asdict(GAN_RECIPES["improved"]), dataclasses.asdict(GAN_RECIPES["paper"])
    undone = {"two time-scale rates": {"lr_d"}, "faster generator": {"lr"}}
    assert set(gan_ablations()) == set(undone)
    for change, settings in gan_ablations().items():
        fields = dataclasses.asdict(settings)
        differing = {k for k in fields if k != "name" and fields[k] != improved[k]}
        assert differing == undone[change], change
        assert all(fields[k] == paper[k] for k in differing)  # back to the paper's setting
        assert settings.name not in ("improved", "paper")  # its own run folder and label
    assert {k for k in improved if improved[k] != paper[k]} == {"name", *set().union(*undone.values())}


def test_the_discriminator_learns_at_its_own_rate_and_the_recipe_names_the_run(tmp_path):
    _, _, g_opt, d_opt = build_gan(10, 2e-4, lr_d=4e-4)
    assert g_opt.param_groups[0]["lr"] == 2e-4 and d_opt.param_groups[0]["lr"] == 4e-4
    assert build_gan(10, 2e-4)[3].param_groups[0]["lr"] == 2e-4  # one rate: the paper's recipe
    paper, improved = (train_gan(GAN_RECIPES[name], TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
                       for name in ("paper", "improved"))
    assert "-aw-paper-" in paper["run"] and "-aw-improved-" in improved["run"]
    assert (improved["settings"]["lr"], improved["settings"]["lr_d"]) == (GAN_RECIPES["improved"].lr,
                                                                        GAN_RECIPES["improved"].lr_d)
    assert paper["log"]["d_loss"] != improved["log"]["d_loss"]
