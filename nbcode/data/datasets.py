"""CIFAR-100, CIFAR-10 and an offline synthetic stand-in, as in-memory uint8 tensors.

    train = load("cifar100", "train")          # ImageData: images (50000, 3, 32, 32) uint8
    train.images, train.labels, train.classes  # + coarse_labels / coarse_classes for CIFAR-100

Downloads and md5 checks go through torchvision's dataset classes (their file lists and sums);
the pickled batches are then read straight into tensors, with errors that name the bad file.

Environment variables:
    NBCODE_DATA        the data root (default: ~/.cache/nbcode/data)
    NBCODE_DATASET     the dataset the notebooks use (default: cifar100)
    NBCODE_UNVERIFIED  "1" to load a local copy whose md5 sums differ from the official files
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import check_integrity

from nbcode.data.safe_pickle import UnsafePickleError, load_numpy_pickle
from nbcode.runs.profiles import Profile, absolute_path_setting

DATA_VARIABLE = "NBCODE_DATA"
DATASET_VARIABLE = "NBCODE_DATASET"
UNVERIFIED_VARIABLE = "NBCODE_UNVERIFIED"
DATASETS = ("cifar100", "cifar10", "synthetic")
TORCHVISION_CLASSES = {"cifar100": CIFAR100, "cifar10": CIFAR10}
SYNTHETIC_SIZES = {"train": 10_000, "test": 2_000}
SPLITS = ("train", "test")


class DataMissingError(FileNotFoundError):
    """The dataset is not under the data root."""


class DataCorruptError(RuntimeError):
    """A dataset file is truncated, corrupted or not the official file."""


class DataChangedError(RuntimeError):
    """The data loaded now is not the data a run was trained on."""


@dataclass
class ImageData:
    """One split of an image-classification dataset, held in memory.

    Attributes:
        images: (N, 3, 32, 32) uint8, RGB.
        labels: (N,) int64 class indices into `classes`.
        classes: class names.
        name: "cifar100", "cifar10" or "synthetic".
        split: "train" or "test".
        verified: True when the files passed the official md5 check.
        coarse_labels: (N,) int64 superclass indices (CIFAR-100 and synthetic), else None.
        coarse_classes: superclass names, else None.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str
    verified: bool
    coarse_labels: torch.Tensor | None = None
    coarse_classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def synthetic(self) -> bool:
        return self.name == "synthetic"

    def describe(self) -> str:
        """One line saying what this data is, e.g. for the top of a plot or a results table."""
        source = ("SYNTHETIC stand-in data, not CIFAR" if self.synthetic
                  else "official files, md5 checked" if self.verified
                  else "local copy, md5 NOT checked")
        return f"{self.name} {self.split}: {len(self):,} images, {len(self.classes)} classes ({source})"

    def fingerprint(self) -> str:
        """Sixteen hex digits of a SHA-256 of the pixels and labels: two sets with the same name and
        size but other images (another copy, another stand-in) get other fingerprints."""
        digest = hashlib.sha256(self.images.contiguous().numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]

    def take(self, index: torch.Tensor, split: str | None = None) -> ImageData:
        """The images at `index` (an int64 tensor), optionally under another split name."""
        coarse = None if self.coarse_labels is None else self.coarse_labels[index]
        return ImageData(self.images[index], self.labels[index], self.classes, self.name, split or self.split,
                         self.verified, coarse, self.coarse_classes)

    def subset(self, n: int, seed: int = 0) -> ImageData:
        """A random subset of `n` images (all of them when n >= len(self)), fixed by `seed`."""
        if n >= len(self):
            return self
        return self.take(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n])


def data_root(root: str | Path | None = None) -> Path:
    """`root`, else $NBCODE_DATA (which must be absolute), else ~/.cache/nbcode/data."""
    return Path(root or absolute_path_setting(DATA_VARIABLE) or Path.home() / ".cache" / "nbcode" / "data")


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def ensure_downloaded(profile: Profile, name: str | None = None, root: str | Path | None = None) -> None:
    """Download the dataset `profile` needs when it is not on disk (a first run with internet).

    Profiles that fall back to the synthetic stand-in (smoke) never download. The download goes
    through torchvision (its md5 check and progress bar) and says so first. Without network it
    stops with the usual "not found" message, which says how to place the files by hand.

    Raises:
        DataMissingError: the data is missing and could not be downloaded.
    """
    name = dataset_name(name)
    _check_name(name)
    if name == "synthetic" or profile.allow_synthetic:
        return
    cls = TORCHVISION_CLASSES[name]
    folder = data_root(root) / cls.base_folder
    if all((folder / f).exists() for split in SPLITS for f, _ in _split_files(name, split)):
        return
    print(f"{name} is not in the data root ({folder}); downloading it once with torchvision "
          f"(about 170 MB, md5-checked) ...", flush=True)
    try:
        download(name, root)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; torchvision raises RuntimeError
        raise DataMissingError(f"the download failed ({type(error).__name__}: {error}).\n"
                               + _missing_message(name, folder)) from error


def download(name: str, root: str | Path | None = None) -> Path:
    """Download and md5-check CIFAR-10 or CIFAR-100 with torchvision; return its folder."""
    _check_name(name)
    if name == "synthetic":
        raise ValueError("the synthetic dataset is generated in memory; there is nothing to download")
    root = data_root(root)
    cls = TORCHVISION_CLASSES[name]
    cls(str(root), train=True, download=True)
    return root / cls.base_folder


def _read_pickle(path: Path) -> dict:
    """A CIFAR pickle, read by an unpickler that admits numpy arrays, dicts, lists, strings and
    numbers only; the file must hold a dict."""
    try:
        entry = load_numpy_pickle(path, encoding="latin1")
    except UnsafePickleError as err:
        raise DataCorruptError(f"{path} is not a CIFAR file: {err}. Delete it and download again.") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, OSError) as err:
        raise DataCorruptError(f"{path} could not be read ({type(err).__name__}: {err}). The file is truncated "
                               f"or corrupted: delete it and download again.") from err
    if not isinstance(entry, dict):
        raise DataCorruptError(f"{path} holds a {type(entry).__name__}, not the dict of a CIFAR file: delete it "
                               f"and download again.")
    return entry


def _split_files(name: str, split: str) -> list[tuple[str, str]]:
    """(file name, official md5) of the split's batches, then of the metadata file."""
    cls = TORCHVISION_CLASSES[name]
    batches = cls.train_list if split == "train" else cls.test_list
    return [*batches, (cls.meta["filename"], cls.meta["md5"])]


def _missing_message(name: str, folder: Path) -> str:
    return (f"{name} was not found in {folder}.\n"
            f"The data root is {folder.parent} (set ${DATA_VARIABLE} to use another folder).\n"
            f"Download it (needs internet) with:\n    python -m nbcode.data download {name}\n"
            f"or pass download=True to nbcode.data.datasets.load.")


def _check_files(name: str, folder: Path, files: list[tuple[str, str]], verify: bool) -> None:
    """Raise DataMissingError for a missing folder or file, DataCorruptError for a failed md5 check
    (with `verify`); warn, without `verify`, that the copy is unchecked."""
    if not folder.is_dir():
        raise DataMissingError(_missing_message(name, folder))
    for file_name, md5 in files:
        path = folder / file_name
        if not path.exists():
            raise DataMissingError(f"{path} is missing. " + _missing_message(name, folder))
        if verify and not check_integrity(str(path), md5):
            raise DataCorruptError(
                f"{path} fails the md5 check: it is truncated, corrupted or not the official file.\n"
                f"Delete {folder} and run `python -m nbcode.data download {name}`; for a local copy that you "
                f"trust, load with verify=False (or set {UNVERIFIED_VARIABLE}=1).")
    if not verify:
        warnings.warn(f"loading the local {name} copy WITHOUT the md5 check ({UNVERIFIED_VARIABLE}=1 or "
                      f"verify=False): results on it are not comparable to published figures", stacklevel=3)


def load_cifar(name: str, split: str = "train", root: str | Path | None = None,
               download_missing: bool = False, verify: bool = True) -> ImageData:
    """Load CIFAR-10 or CIFAR-100 from torchvision's python-pickle files.

    Args:
        name: "cifar100" or "cifar10".
        split: "train" or "test".
        root: data root (see `data_root`).
        download_missing: download with torchvision when the files are missing.
        verify: check every file against torchvision's official md5 sums. A local copy with other
            sums (e.g. JPEG re-encodings) loads only with verify=False, and then with a warning.

    Raises:
        DataMissingError: the dataset's folder or one of its files is missing.
        DataCorruptError: a file fails the md5 check or cannot be unpickled; the message names it.
    """
    _check_split(split)
    cls = TORCHVISION_CLASSES[name]
    folder = data_root(root) / cls.base_folder
    files = _split_files(name, split)
    if download_missing and not all((folder / f).exists() for f, _ in files):
        download(name, root)
    _check_files(name, folder, files, verify)
    meta_path = folder / files[-1][0]
    meta = _read_pickle(meta_path)
    classes = meta.get("fine_label_names", meta.get("label_names"))
    coarse_classes = meta.get("coarse_label_names")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataCorruptError(f"{meta_path} holds no list of class names; it is corrupted: delete it and "
                               f"download again.")
    images, fine, coarse = [], [], []
    for file_name, _ in files[:-1]:
        path = folder / file_name
        entry = _read_pickle(path)
        images.append(_check_images(path, entry))
        fine.append(_check_labels(path, entry, "fine_labels" if name == "cifar100" else "labels", len(classes)))
        if coarse_classes is not None:
            coarse.append(_check_labels(path, entry, "coarse_labels", len(coarse_classes)))
    return ImageData(torch.cat(images), torch.cat(fine), list(classes), name, split, verify,
                     torch.cat(coarse) if coarse else None, coarse_classes)


_NOT_CIFAR = "it is corrupted or not a CIFAR file: delete it and download again."


def _check_images(path: Path, entry: dict) -> torch.Tensor:
    """The (N, 3, 32, 32) uint8 images of one batch file, after checking that its 'data' is an
    (N, 3072) uint8 array; a DataCorruptError names the file and what is wrong."""
    data = entry.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataCorruptError(f"{path}: 'data' is not a uint8 array ({type(data).__name__} "
                               f"{getattr(data, 'dtype', '')}); {_NOT_CIFAR}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataCorruptError(f"{path} does not hold (N, 3072) images (data {data.shape}); {_NOT_CIFAR}")
    return torch.from_numpy(data).view(-1, 3, 32, 32)


def _check_labels(path: Path, entry: dict, label_key: str, num_classes: int) -> torch.Tensor:
    """The (N,) int64 labels under `label_key` of one batch file, after checking that they are one
    integer in [0, num_classes) per image; a DataCorruptError names the file and what is wrong."""
    labels, n = entry.get(label_key), len(entry["data"])
    if not isinstance(labels, list) or not all(isinstance(y, (int, np.integer)) for y in labels):
        raise DataCorruptError(f"{path}: {label_key!r} is not a list of integer labels; {_NOT_CIFAR}")
    if len(labels) != n:
        raise DataCorruptError(f"{path} does not hold N labels for its N = {n} images ({len(labels)} in "
                               f"{label_key!r}); {_NOT_CIFAR}")
    labels = torch.tensor(labels, dtype=torch.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataCorruptError(f"{path}: {label_key!r} holds labels outside [0, {num_classes}) "
                               f"({labels.min().item()} to {labels.max().item()}); {_NOT_CIFAR}")
    return labels


def make_synthetic(split: str = "train", n: int | None = None, num_classes: int = 100,
                   seed: int = 0) -> ImageData:
    """A deterministic, learnable, class-conditional stand-in for CIFAR, made in memory.

    Each class is a striped pattern with its own two colours, stripe angle and frequency; each
    image draws a random phase and pixel noise. Angles lie in [0, pi/2), so a horizontal flip
    (which maps angle a to pi - a) never turns one class into another. Classes are fixed by
    `seed` alone, so the train and test splits share them; the images differ per split.
    Superclasses group five consecutive classes, as CIFAR-100's 20 superclasses do.

    Returns:
        ImageData with images (n, 3, 32, 32) uint8 and balanced labels.
    """
    _check_split(split)
    n = SYNTHETIC_SIZES[split] if n is None else n
    classes = torch.Generator().manual_seed(seed)
    colours = 0.15 + 0.7 * torch.rand(num_classes, 2, 3, 1, 1, generator=classes)
    angles = (torch.pi / 2) * torch.rand(num_classes, generator=classes)
    frequencies = 1.0 + 3.0 * torch.rand(num_classes, generator=classes)  # stripes per 32 pixels

    rng = torch.Generator().manual_seed(seed * 1000 + SPLITS.index(split) + 1)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=rng)]
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    a, f = angles[labels].view(-1, 1, 1), frequencies[labels].view(-1, 1, 1)
    phase = 2 * torch.pi * torch.rand(n, 1, 1, generator=rng)
    wave = torch.sin(2 * torch.pi * f * (xs * torch.cos(a) + ys * torch.sin(a)) / 32 + phase)
    mix = (0.5 + 0.5 * wave).unsqueeze(1)  # (n, 1, 32, 32)
    pictures = colours[labels, 0] * mix + colours[labels, 1] * (1 - mix)
    pictures = pictures + 0.06 * torch.randn(pictures.shape, generator=rng)
    images = (pictures.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageData(images, labels, [f"synthetic_{c:02d}" for c in range(num_classes)], "synthetic", split,
                     verified=False, coarse_labels=labels // 5,
                     coarse_classes=[f"group_{g:02d}" for g in range((num_classes + 4) // 5)])


def dataset_name(name: str | None = None) -> str:
    """`name`, else $NBCODE_DATASET, else "cifar100"."""
    return name or os.environ.get(DATASET_VARIABLE) or "cifar100"


def _unverified_from_env() -> bool:
    return os.environ.get(UNVERIFIED_VARIABLE, "").lower() in ("1", "true", "yes")


def load(name: str | None = None, split: str = "train", *, root: str | Path | None = None,
         download: bool = False, verify: bool | None = None) -> ImageData:
    """Load a dataset by name: "cifar100", "cifar10" or "synthetic" (default: $NBCODE_DATASET or cifar100).

    `verify` defaults to True unless $NBCODE_UNVERIFIED=1. See `load_cifar` for the errors.
    """
    name = dataset_name(name)
    _check_name(name)
    if name == "synthetic":
        return make_synthetic(split)
    verify = (not _unverified_from_env()) if verify is None else verify
    return load_cifar(name, split, root, download_missing=download, verify=verify)


def load_for_profile(profile: Profile, split: str = "train", name: str | None = None,
                     root: str | Path | None = None) -> ImageData:
    """The data a notebook should use under `profile`.

    Real data when it is on disk. When it is not and the profile allows it (smoke), the synthetic
    stand-in with as many classes, with a warning. The training split is cut to
    `profile.train_limit` images.
    """
    name = dataset_name(name)
    try:
        data = load(name, split, root=root)
    except DataMissingError:
        if not profile.allow_synthetic:
            raise
        num_classes = 10 if name == "cifar10" else 100
        warnings.warn(f"{name} is not in the data root (${DATA_VARIABLE}, default ~/.cache/nbcode/data); the "
                      f"{profile.name} profile uses SYNTHETIC data instead", stacklevel=2)
        data = make_synthetic(split, num_classes=num_classes)
    if split == "train" and profile.train_limit is not None:
        data = data.subset(profile.train_limit)
    return data


def data_source(train: ImageData, requested: str) -> dict:
    """What a run record keeps so that its data can be loaded again exactly (`load_run_split`):
    the dataset asked for, the one loaded (the synthetic stand-in when the profile fell back to
    it), its number of classes and the fingerprint of the training images."""
    return {"requested": requested, "loaded": train.name, "classes": len(train.classes),
            "train_fingerprint": train.fingerprint()}


def load_run_split(source: dict, profile: Profile, split: str, root: str | Path | None = None) -> ImageData:
    """The `split` of the data a run was trained on, from its record's `data_source`: loaded as
    the run loaded it, and checked to be the same dataset (and, for "train", the same images).

    Raises:
        DataChangedError: the data root now gives other data (the real files appeared or changed,
            or the profile differs); the message says what each is.
    """
    data = load_for_profile(profile, split, source["requested"], root)
    changed = data.name != source["loaded"] or len(data.classes) != source["classes"] or (
        split == "train" and data.fingerprint() != source["train_fingerprint"])
    if changed:
        raise DataChangedError(
            f"the run was trained on {source['loaded']} ({source['classes']} classes, training images "
            f"{source['train_fingerprint']}), but {source['requested']!r} at the {profile.name} profile now "
            f"gives {data.describe()}. Score it with the data it was trained on, or train it again.")
    return data


def channel_stats(images: torch.Tensor, chunk: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units.

    Args:
        images: (N, 3, H, W) uint8.
    Returns:
        mean, std: (3,) float32 each.
    """
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean * mean).sqrt()
    return mean.float(), std.float()


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The indices of mini-batch number `step` in a shuffled pass over n items.

    Epoch e = step // (n // batch_size) uses its own permutation, seeded by (seed, e); the last
    incomplete batch of each epoch is dropped. Stateless: any step can be recomputed, so a run
    resumed at step s sees exactly the batches an uninterrupted run would.

    Returns:
        (batch_size,) int64 indices into [0, n).
    """
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} images)")
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[position * batch_size:(position + 1) * batch_size]


def random_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                   seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches (see `batch_indices`).

    Args:
        images: (N, 3, H, W) uint8, on any device; batches stay on that device.
        labels: (N,) int64, on the same device.
    Yields:
        (batch_size, 3, H, W) uint8 images and (batch_size,) labels.
    """
    step = 0
    while True:
        index = batch_indices(len(labels), batch_size, step, seed).to(images.device)
        yield images[index], labels[index]
        step += 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.data", description="Fetch datasets for the notebooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download and md5-check CIFAR-10 or CIFAR-100")
    fetch.add_argument("name", choices=[n for n in DATASETS if n != "synthetic"])
    fetch.add_argument("--root", default=None, help=f"data root (default: ${DATA_VARIABLE} or ~/.cache/nbcode/data)")
    args = parser.parse_args()
    try:
        print(download(args.name, args.root))
    except (OSError, RuntimeError) as error:  # URLError is an OSError; torchvision raises RuntimeError
        cls = TORCHVISION_CLASSES[args.name]
        root = data_root(args.root)
        sys.exit(f"The download of {args.name} failed ({type(error).__name__}: {error}).\n"
                 f"Without internet, place the files by hand: fetch {cls.url} on a machine that has it, copy "
                 f"it to {root} and unpack it there (tar xzf {cls.filename} -C {root}), so that "
                 f"{root / cls.base_folder} holds the batch files; then run this command again to check them.")


if __name__ == "__main__":
    main()
