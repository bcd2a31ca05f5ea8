import pytest
import torch

from nbcode.diff_augment import diff_augment, random_colour, random_cutout, random_translation


def images(n: int = 8) -> torch.Tensor:
    """(n, 3, 32, 32) images in [-1, 1), every pixel value different (so shifts can be located)."""
    return torch.linspace(-1, 0.99, n * 3 * 32 * 32).view(n, 3, 32, 32)


def test_translation_is_a_shift_of_at_most_four_pixels_with_zero_fill():
    x = images()
    shifted = random_translation(x, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    offsets = []
    for i in range(len(x)):
        offsets += [(t, l) for t in range(9) for l in range(9) if torch.equal(padded[i, :, t:t + 32, l:l + 32],
                                                                              shifted[i])]
    assert len(offsets) == len(x) and len(set(offsets)) > 1  # each image one shift, drawn per image


def test_cutout_zeroes_one_square_of_at_most_half_the_side_per_image():
    x = images() + 2  # no pixel is zero before the cutout
    cut = random_cutout(x, generator=torch.Generator().manual_seed(1))
    for i in range(len(x)):
        zero = (cut[i] == 0).all(0)
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 16 and 0 < len(cols) <= 16
        assert zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one filled square
        assert torch.equal(cut[i][:, ~zero], x[i][:, ~zero])  # the rest untouched


def test_colour_keeps_each_images_structure_and_changes_images_differently():
    x = images(4)
    coloured = random_colour(x, torch.Generator().manual_seed(2))
    assert coloured.shape == x.shape
    shifts = (coloured - x).mean((1, 2, 3))
    assert len(set(shifts.round(decimals=4).tolist())) == 4  # drawn per image


def test_the_generator_gets_gradients_through_every_operation():
    x = images(4).requires_grad_()
    diff_augment(x, ("colour", "translation", "cutout"), torch.Generator().manual_seed(3)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_same_seed_gives_the_same_augmentation_and_no_policy_none():
    x = images(4)
    policy = ("colour", "translation", "cutout")
    first, second = (diff_augment(x, policy, torch.Generator().manual_seed(4)) for _ in range(2))
    assert torch.equal(first, second)
    assert torch.equal(diff_augment(x, ()), x)


def test_an_unknown_operation_is_an_error_naming_the_valid_ones():
    with pytest.raises(ValueError, match="valid: colour, translation, cutout"):
        diff_augment(images(2), ("color",))
