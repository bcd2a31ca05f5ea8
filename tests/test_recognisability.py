"""GAN-test accuracy: counted per class, chance for a generator that ignores its labels."""
import pytest
import torch
from torch import nn

from nbcode.book.verdicts import recognisability_verdict
from nbcode.gan import Generator
from nbcode.metrics.recognisability import per_class_accuracy, samples_per_class

MEAN, STD = torch.full((3,), 0.5), torch.full((3,), 0.25)


class RedGreenBlue(nn.Module):
    """Labels an image by its brightest channel (class 0 red, 1 green, 2 blue)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def solid(colour: int, n: int) -> torch.Tensor:
    images = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    images[:, colour] = 255
    return images


def test_per_class_accuracy_counts_each_class_separately():
    images = torch.cat([solid(0, 4), solid(1, 2), solid(2, 2)])  # two blue images labelled green
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    accuracy = per_class_accuracy(RedGreenBlue(), images, labels, MEAN, STD, batch_size=3)
    assert accuracy.tolist() == [1.0, 0.5, pytest.approx(float("nan"), nan_ok=True)]


def test_samples_per_class_are_balanced_and_seeded():
    torch.manual_seed(0)
    g = Generator(num_classes=3)
    images, labels = samples_per_class(g, per_class=4, seed=1, batch_size=5)
    assert images.shape == (12, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(images, samples_per_class(g, per_class=4, seed=1)[0])
    with pytest.raises(ValueError, match="conditional generator"):
        samples_per_class(Generator(num_classes=0), per_class=2)


def test_the_verdict_compares_with_chance():
    real = torch.tensor([0.9, 0.8, 0.7, 0.8])
    assert recognisability_verdict(torch.tensor([0.7, 0.6, 0.5, 0.6]), real, 400, "toy").text.endswith(
        "the samples carry their classes.")
    sentence = recognisability_verdict(torch.tensor([0.25, 0.3, 0.2, 0.25]), real, 400, "toy").text
    assert "25.0% of 400 generated images" in sentence and "80.0% on real test images" in sentence
    assert sentence.endswith("inconclusive at this budget.")
