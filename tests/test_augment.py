import pytest
import torch
import torchvision.transforms.v2.functional as TF

from nbcode.augment import (
    Augmentation,
    adjust_colour,
    augment_batch,
    colour_jitter,
    normalize,
    prepare_batch,
    random_crop_flip,
)
from nbcode.data.datasets import channel_stats, make_synthetic


def unique_images(n: int = 6) -> torch.Tensor:
    """(n, 3, 32, 32) float images whose every pixel value is different, so crops can be located."""
    return torch.arange(n * 3 * 32 * 32, dtype=torch.float32).view(n, 3, 32, 32) + 1


def test_random_crop_is_a_window_of_the_zero_padded_image():
    images = unique_images()
    crops = random_crop_flip(images, 4, False, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    offsets = set()
    for i in range(len(images)):
        matches = [(t, l) for t in range(9) for l in range(9) if torch.equal(padded[i, :, t:t + 32, l:l + 32], crops[i])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 1  # offsets are drawn per image


def test_random_crop_without_padding_is_identity():
    images = unique_images()
    assert torch.equal(random_crop_flip(images, 0, False), images)


def test_crop_and_flip_together_give_a_window_or_its_mirror():
    images = unique_images(20)
    out = random_crop_flip(images, 2, True, torch.Generator().manual_seed(2))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(len(images)):
        windows = [padded[i, :, t:t + 32, l:l + 32] for t in range(5) for l in range(5)]
        assert sum(torch.equal(out[i], win) or torch.equal(out[i], win.flip(2)) for win in windows) == 1


def test_random_flip_mirrors_about_half():
    images = unique_images(200)
    out = random_crop_flip(images, 0, True, torch.Generator().manual_seed(1))
    same = [torch.equal(o, i) for o, i in zip(out, images)]
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    assert all(s != m for s, m in zip(same, mirrored))
    assert 70 < sum(mirrored) < 130


@pytest.mark.parametrize("factor", [0.8, 1.0, 1.2])
def test_adjust_colour_matches_torchvision(factor):
    images = make_synthetic("test", n=4).images.float() / 255
    ones = torch.ones(4)
    f = torch.full((4,), factor)
    ours = adjust_colour(images, f, f, f)
    theirs = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(images, factor), factor), factor)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)  # float rounding; 1/255 = 4e-3
    torch.testing.assert_close(adjust_colour(images, ones, ones, ones), images, atol=1e-6, rtol=0)


def test_colour_jitter_of_strength_zero_is_identity_and_else_varies_per_image():
    images = make_synthetic("test", n=8).images.float() / 255
    torch.testing.assert_close(colour_jitter(images, 0, 0, 0), images, atol=1e-6, rtol=0)
    jittered = colour_jitter(images, 0.4, 0, 0, torch.Generator().manual_seed(0))
    ratios = (jittered.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3)))
    assert ratios.std() > 0.01


def test_augmented_batches_are_normalised_and_reproducible():
    data = make_synthetic("train", n=512)
    mean, std = channel_stats(data.images)
    a = augment_batch(data.images, mean, std, Augmentation(), torch.Generator().manual_seed(3))
    b = augment_batch(data.images, mean, std, Augmentation(), torch.Generator().manual_seed(3))
    assert a.shape == (512, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    plain = prepare_batch(data.images, mean, std)
    torch.testing.assert_close(plain.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(plain.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


def test_normalize_broadcasts_per_channel():
    x = torch.ones(2, 3, 4, 4)
    out = normalize(x, torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.5, 2.0]))
    assert out[:, 0].eq(1).all() and out[:, 1].eq(1).all() and out[:, 2].eq(0).all()
