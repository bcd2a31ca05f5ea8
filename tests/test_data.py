import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nbcode.augment import Augmentation, augment_batch, prepare_batch
from nbcode.data.datasets import (
    DataCorruptError,
    DataMissingError,
    channel_stats,
    ensure_downloaded,
    load,
    load_for_profile,
    make_synthetic,
    random_batches,
)
from nbcode.runs.profiles import get_profile


def write_fake_cifar100(root, n_train: int = 20, n_test: int = 10) -> None:
    """A tiny CIFAR-100 in torchvision's layout. Its md5 sums are not the official ones."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = list(rng.integers(0, 100, n))
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": fine,
                 "coarse_labels": [f // 5 for f in fine]}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"coarse{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))


def test_missing_data_names_the_root_the_variable_and_the_command(tmp_path):
    with pytest.raises(DataMissingError) as info:
        load("cifar100", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "NBCODE_DATA" in message
    assert "python -m nbcode.data download cifar100" in message


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="cifar100, cifar10, synthetic"):
        load("imagenet")
    with pytest.raises(ValueError, match="train, test"):
        load("cifar10", "validation")


def test_local_copy_is_refused_by_the_md5_check_and_names_the_file(tmp_path):
    write_fake_cifar100(tmp_path)
    with pytest.raises(DataCorruptError, match=r"cifar-100-python/train fails the md5 check"):
        load("cifar100", root=tmp_path)


def test_local_copy_loads_with_the_check_off_and_warns(tmp_path):
    write_fake_cifar100(tmp_path)
    with pytest.warns(UserWarning, match="WITHOUT the md5 check"):
        train = load("cifar100", "train", root=tmp_path, verify=False)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and len(train.classes) == 100
    assert torch.equal(train.coarse_labels, train.labels // 5) and len(train.coarse_classes) == 20
    assert "md5 NOT checked" in train.describe()


def test_unverified_opt_out_from_the_environment(tmp_path, monkeypatch):
    write_fake_cifar100(tmp_path)
    monkeypatch.setenv("NBCODE_UNVERIFIED", "1")
    with pytest.warns(UserWarning):
        assert len(load("cifar100", "test", root=tmp_path)) == 10


def test_truncated_file_error_names_the_file(tmp_path):
    write_fake_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "train"
    path.write_bytes(path.read_bytes()[:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataCorruptError, match=str(path)):
            load("cifar100", root=tmp_path, verify=False)


def test_smoke_profile_falls_back_to_synthetic_and_says_so(tmp_path):
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        train = load_for_profile(get_profile("smoke"), "train", "cifar100", root=tmp_path)
    assert train.synthetic and "SYNTHETIC" in train.describe()
    assert len(train) == get_profile("smoke").train_limit


def test_quick_profile_never_falls_back_to_synthetic(tmp_path):
    with pytest.raises(DataMissingError):
        load_for_profile(get_profile("quick"), "train", "cifar100", root=tmp_path)


def test_synthetic_is_deterministic_balanced_and_split_specific():
    a, b = make_synthetic("train", n=1000, seed=7), make_synthetic("train", n=1000, seed=7)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.bincount(a.labels).tolist() == [10] * 100
    assert not torch.equal(make_synthetic("test", n=1000, seed=7).images, a.images)
    assert a.images.dtype == torch.uint8 and a.images.shape == (1000, 3, 32, 32)


def test_synthetic_is_learnable_far_above_chance():
    """A tiny CNN, trained briefly on augmented batches, must beat 10-class chance (10 %) by far."""
    torch.manual_seed(0)
    train, test = make_synthetic("train", n=4000, num_classes=10), make_synthetic("test", n=1000, num_classes=10)
    mean, std = channel_stats(train.images)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = random_batches(train.images, train.labels, 128, seed=0)
    for _ in range(150):
        images, labels = next(batches)
        loss = torch.nn.functional.cross_entropy(model(augment_batch(images, mean, std, Augmentation())), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = (model(prepare_batch(test.images, mean, std)).argmax(1) == test.labels).float().mean().item()
    assert accuracy > 0.6


def test_random_batches_visit_every_image_once_per_epoch():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 2, 2)
    labels = torch.arange(40)
    batches = random_batches(images, labels, 8, seed=0)
    seen = torch.cat([next(batches)[1] for _ in range(5)])
    assert sorted(seen.tolist()) == list(range(40))
    with pytest.raises(ValueError, match="larger than the dataset"):
        next(random_batches(images, labels, 41))


def test_channel_stats_match_a_direct_computation():
    images = make_synthetic("test", n=300).images
    mean, std = channel_stats(images, chunk=64)
    x = images.double() / 255
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3)).float())
    torch.testing.assert_close(std, x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, correction=0).float(),
                               rtol=1e-4, atol=1e-5)


def test_a_first_run_downloads_the_missing_dataset_and_says_so(tmp_path, monkeypatch, capsys):
    fetched = []

    def fake_download(name, root=None):  # what torchvision's download leaves on disk
        fetched.append(name)
        write_fake_cifar100(Path(root))

    monkeypatch.setattr("nbcode.data.datasets.download", fake_download)
    ensure_downloaded(get_profile("quick"), "cifar100", root=tmp_path)
    assert fetched == ["cifar100"] and "downloading it once" in capsys.readouterr().out
    ensure_downloaded(get_profile("quick"), "cifar100", root=tmp_path)  # on disk now: nothing to do
    assert fetched == ["cifar100"] and capsys.readouterr().out == ""
    ensure_downloaded(get_profile("smoke"), "cifar10", root=tmp_path)  # smoke falls back, never downloads
    assert fetched == ["cifar100"]


def test_a_first_run_offline_stops_with_the_clear_message(tmp_path):
    with pytest.raises(DataMissingError, match=r"(?s)download failed.*was not found.*python -m nbcode.data download"):
        ensure_downloaded(get_profile("quick"), "cifar10", root=tmp_path)  # the tests' network guard refuses
