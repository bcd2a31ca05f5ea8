"""Numbers that cannot be silently wrong: the hostile cases of a runs cache copied between machines,
edited, restored from a backup, filled on a full disk or read from another folder, made small
(synthetic data, a tiny budget, planted pickles that touch a marker file)."""
import dataclasses
import errno
import os
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_robustness import write_fake_cifar10

import nbcode.runs.cache
import nbcode.runs.classifier
import nbcode.runs.scaffold
from nbcode.book.build import source_key
from nbcode.data.datasets import (
    DataChangedError,
    data_root,
    load_run_split,
    make_synthetic,
)
from nbcode.gan_recipe import GANSettings
from nbcode.metrics.evaluation import evaluate_gan, score_on_training_images
from nbcode.metrics.fid import fid_kid, inception_weights, real_floor, sample_images
from nbcode.metrics.inception import offline_inception_weights
from nbcode.metrics.nearest import real_lpips
from nbcode.runs.cache import (
    CheckpointMismatchError,
    CorruptRunFileError,
    runs_root,
    save_checkpoint,
    write_json,
)
from nbcode.runs.classifier import load_trained_classifier, train_classifier
from nbcode.runs.gan import load_trained_generator, train_gan
from nbcode.runs.profiles import get_profile

TINY = dataclasses.replace(get_profile("smoke"), name="tiny", classifier_steps=8, classifier_batch=32,
                           eval_every=4, eval_images=64, train_limit=256, gan_iterations=4, gan_batch=8)
QUIET = {"progress": False}
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class Planted:
    """A pickle that touches `marker` when it is unpickled: code a copied cache could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def classifier(tmp_path: Path, **kwargs) -> dict:
    return train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET, **kwargs)


def folder_of(tmp_path: Path, record: dict) -> Path:
    return tmp_path / record["kind"] / record["run"]


# 1. No planted code runs ---------------------------------------------------------------------------

def test_a_planted_fidelity_cache_file_is_refused_before_torch_fidelity_unpickles_it(tmp_path):
    reference, generated = make_synthetic("test", n=8, seed=1), make_synthetic("test", n=8, seed=2).images
    tag = inception_weights(tmp_path)[1]
    name = f"nbcode-{reference.name}-{reference.split}-{len(reference)}-{reference.fingerprint()}-{tag}"
    planted = tmp_path / "fidelity-cache" / f"{name}-inception-v3-compat-channels-last-features-2048.pt"
    planted.parent.mkdir(parents=True)
    torch.save(Planted(tmp_path / "marker"), planted)
    with pytest.raises(CorruptRunFileError, match=f"{planted}.*pickled objects.*delete it"):
        fid_kid(None, reference, 0, generated=generated, runs_dir=tmp_path)
    assert not (tmp_path / "marker").exists()


def test_planted_inception_weights_are_refused(tmp_path):
    path = tmp_path / "inception" / "pt_inception-2015-12-05-from-fid-helper.pth"
    path.parent.mkdir(parents=True)
    torch.save({"conv.weight": Planted(tmp_path / "marker")}, path)
    assert offline_inception_weights(tmp_path) == path  # found in the cache, so not converted again
    with pytest.raises(CorruptRunFileError, match=str(path)):
        fid_kid(None, make_synthetic("test", n=8), 0, generated=make_synthetic("test", n=8, seed=3).images,
                runs_dir=tmp_path)
    assert not (tmp_path / "marker").exists()


def test_a_planted_lpips_floor_is_refused(tmp_path):
    reference, training = make_synthetic("test", n=4), make_synthetic("train", n=16)
    real_lpips(reference, training, tmp_path)
    (floor,) = (tmp_path / "floors").glob("lpips-*.pt")
    torch.save({"distances": Planted(tmp_path / "marker")}, floor)
    with pytest.raises(CorruptRunFileError, match=str(floor)):
        real_lpips(reference, training, tmp_path)
    assert not (tmp_path / "marker").exists()


# 2. Evaluation scores against the data the run trained on -------------------------------------------

def test_a_run_on_the_ten_class_stand_in_is_evaluated_on_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NBCODE_DATA", str(tmp_path / "no-data"))
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        record = train_gan(GANSettings(), TINY, dataset="cifar10", runs_dir=tmp_path, **QUIET)
    assert record["dataset"] == "synthetic" and record["data_source"]["classes"] == 10
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        scores = evaluate_gan(record, TINY, tmp_path, progress=False)
    ten_classes = make_synthetic("test", num_classes=10).subset(TINY.fid_samples)
    samples = sample_images(load_trained_generator(record, tmp_path), TINY.fid_samples, seed=0)
    assert scores["fid"] == pytest.approx(fid_kid(None, ten_classes, 0, generated=samples, runs_dir=tmp_path)["fid"])
    write_fake_cifar10(tmp_path / "no-data")  # the real files appear: the run's data is gone
    monkeypatch.setenv("NBCODE_UNVERIFIED", "1")
    with pytest.raises(DataChangedError, match="trained on synthetic"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_run_split(record["data_source"], TINY, "test")


def test_recipes_are_chosen_on_training_images_never_the_test_split(tmp_path):
    record = train_gan(GANSettings(), TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    scores = score_on_training_images(record, TINY, tmp_path)
    training = load_run_split(record["data_source"], TINY, "train").subset(TINY.fid_samples, seed=2)
    generator = load_trained_generator(record, tmp_path)
    direct = fid_kid(generator, training, TINY.fid_samples, runs_dir=tmp_path)
    assert scores["fid"] == pytest.approx(direct["fid"]) and scores["kind"] == "training-fid"
    test = load_run_split(record["data_source"], TINY, "test").subset(TINY.fid_samples)
    assert scores["fid"] != pytest.approx(fid_kid(generator, test, TINY.fid_samples, runs_dir=tmp_path)["fid"])
    path = tmp_path / "evaluation" / f"{record['run']}.training.json"
    assert score_on_training_images(record, TINY, tmp_path) == scores  # read back, not computed again
    path.write_text(path.read_text().replace(scores["run_digest"], "another run's digest"))
    assert score_on_training_images(record, TINY, tmp_path)["run_digest"] == scores["run_digest"]  # made again


# 3. Records and checkpoints are bound to each other and to their run ---------------------------------

def test_an_older_checkpoint_restored_into_a_finished_run_is_trained_on_not_served(tmp_path):
    folder = folder_of(tmp_path, classifier(tmp_path, stop_after=4))
    shutil.copy(folder / "checkpoint.pt", tmp_path / "step4.pt")
    full = classifier(tmp_path)
    shutil.copy(tmp_path / "step4.pt", folder / "checkpoint.pt")  # a backup from an earlier time
    with pytest.warns(UserWarning, match="not the record its checkpoint"):
        again = classifier(tmp_path)
    assert again["final"] == full["final"] and torch.load(folder / "checkpoint.pt")["step"] == 8


@pytest.mark.parametrize("edit", ["nan", "number"])
def test_an_edited_or_nan_record_is_made_again_from_its_checkpoint(tmp_path, edit):
    full = classifier(tmp_path)
    path = folder_of(tmp_path, full) / "metrics.json"
    edited = {**full, "final": {**full["final"], "test": {**full["final"]["test"],
                                                          "mean": float("nan") if edit == "nan" else 0.99}}}
    write_json(path, edited)
    with pytest.warns(UserWarning, match="NaN" if edit == "nan" else "edited"):
        again = classifier(tmp_path)
    assert again["final"] == full["final"]


def test_another_runs_checkpoint_is_refused(tmp_path):
    paper = classifier(tmp_path)
    improved = train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    shutil.copy(folder_of(tmp_path, paper) / "checkpoint.pt", folder_of(tmp_path, improved) / "checkpoint.pt")
    with pytest.raises(CheckpointMismatchError, match=f"run '{paper['run']}', not of '{improved['run']}'"):
        train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    with pytest.raises(CheckpointMismatchError):
        load_trained_classifier(improved, tmp_path)


def test_nan_weights_are_refused(tmp_path):
    record = train_gan(GANSettings(), TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)
    path = folder_of(tmp_path, record) / "checkpoint.pt"
    state = torch.load(path)
    next(value for value in state["g_ema"].values() if value.is_floating_point()).fill_(float("nan"))
    torch.save(state, path)
    with pytest.raises(CorruptRunFileError, match="NaN or infinite values.*g_ema"):
        load_trained_generator(record, tmp_path)
    with pytest.raises(CorruptRunFileError, match="Delete the run folder"):
        train_gan(GANSettings(), TINY, dataset="synthetic", runs_dir=tmp_path, **QUIET)


# 7 is in test_reproduce.py (the export needs its module's reproduction). 8. Errors that say what to do -

def test_a_full_disk_says_so_and_names_the_file(tmp_path, monkeypatch):
    def no_space(state, file):
        raise RuntimeError("basic_ios::clear: iostream error")  # what torch.save says on a full disk

    monkeypatch.setattr(torch, "save", no_space)
    monkeypatch.setattr(nbcode.runs.cache.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, free=0))
    with pytest.raises(OSError, match=f"no space left on the device writing {tmp_path / 'checkpoint.pt'}") as error:
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert error.value.errno == errno.ENOSPC and not list(tmp_path.glob(".*.tmp"))


def test_a_truncated_fid_statistics_file_is_named_with_the_fix(tmp_path):
    reference, generated = make_synthetic("test", n=8, seed=1), make_synthetic("test", n=8, seed=2).images
    fid_kid(None, reference, 0, generated=generated, runs_dir=tmp_path)
    (statistics,) = (tmp_path / "fidelity-cache").glob("*stat-fid*.pt")
    statistics.write_bytes(statistics.read_bytes()[:100])
    with pytest.raises(CorruptRunFileError, match=f"{statistics}.*truncated.*delete it"):
        fid_kid(None, reference, 0, generated=generated, runs_dir=tmp_path)
    statistics.unlink()  # the advice works
    assert fid_kid(None, reference, 0, generated=generated, runs_dir=tmp_path)["n_reference"] == 8


def test_the_advice_for_a_corrupt_checkpoint_of_a_finished_run_works(tmp_path):
    full = classifier(tmp_path)
    folder = folder_of(tmp_path, full)
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(CorruptRunFileError, match=f"Delete the run folder {folder}"):
        classifier(tmp_path)
    shutil.rmtree(folder)
    assert classifier(tmp_path)["final"] == full["final"]


def test_a_finished_run_is_read_without_taking_its_lock(tmp_path, monkeypatch):
    full = classifier(tmp_path)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system", str(args[0]))

    monkeypatch.setattr(nbcode.runs.cache.FileLock, "acquire", read_only)
    assert classifier(tmp_path)["final"] == full["final"]


# 9. Relative paths mean the same everywhere ------------------------------------------------------------

@pytest.mark.parametrize("variable", ["NBCODE_RUNS", "NBCODE_DATA"])
def test_a_relative_cache_or_data_folder_is_refused_with_the_absolute_one(monkeypatch, variable):
    monkeypatch.setenv(variable, "runs")
    with pytest.raises(ValueError, match=f"relative path 'runs'.*{variable}=\"\\$PWD/runs\""):
        (runs_root if variable == "NBCODE_RUNS" else data_root)()


# 10. Smaller silent cases -------------------------------------------------------------------------------

def test_the_book_executes_again_once_the_data_appears(tmp_path, monkeypatch):
    monkeypatch.setenv("NBCODE_DATA", str(tmp_path))
    monkeypatch.setenv("NBCODE_DATASET", "cifar10")
    chapter = sorted(NOTEBOOKS.glob("0*.py"))[0]
    on_the_fallback = source_key(chapter, "smoke")
    write_fake_cifar10(tmp_path)
    assert source_key(chapter, "smoke") != on_the_fallback


def test_a_resumed_run_records_the_train_loss_of_an_uninterrupted_one(tmp_path):
    straight = classifier(tmp_path / "a")
    classifier(tmp_path / "b", stop_after=2)  # inside the first evaluation window
    resumed = classifier(tmp_path / "b")
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


def test_a_run_killed_between_evaluations_resumes_from_its_timed_checkpoint(tmp_path, monkeypatch):
    straight = classifier(tmp_path / "a")
    monkeypatch.setattr(nbcode.runs.scaffold, "SAVE_SECONDS", 0.0)  # every step is ten minutes late
    step = nbcode.runs.classifier.classifier_step
    calls = iter(range(100))

    def killed_at_the_third(*args, **kwargs):
        if next(calls) == 2:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    monkeypatch.setattr(nbcode.runs.classifier, "classifier_step", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        classifier(tmp_path / "b")  # its first evaluation is after step 4
    (checkpoint,) = (tmp_path / "b").glob("classifier/*/checkpoint.pt")
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    monkeypatch.setattr(nbcode.runs.classifier, "classifier_step", step)
    resumed = classifier(tmp_path / "b")
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


def test_temporary_files_of_killed_writes_are_removed(tmp_path):
    folder = folder_of(tmp_path, classifier(tmp_path, stop_after=4))
    (folder / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    classifier(tmp_path)
    assert not list(folder.glob(".*.tmp"))


def test_floors_are_keyed_by_the_weights_that_computed_them(tmp_path, monkeypatch):
    train, reference = make_synthetic("train", n=64), make_synthetic("test", n=8)
    real_floor(train, reference, tmp_path)
    weights, tag = inception_weights(tmp_path)
    monkeypatch.setattr("nbcode.metrics.fid.inception_weights", lambda runs_dir=None: (weights, "other-weights"))
    real_floor(train, reference, tmp_path)
    names = sorted(path.name for path in (tmp_path / "floors").glob("*.json"))
    assert len(names) == 2 and any(tag in name for name in names) and any("other-weights" in n for n in names)


def test_cache_files_are_readable_by_the_group_as_the_umask_says(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json(tmp_path / "record.json", {"a": 1})
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    finally:
        os.umask(umask)
    assert {oct(path.stat().st_mode & 0o777) for path in tmp_path.iterdir()} == {"0o644"}

# 11, the lab launcher's SIGTERM, is in test_lab.py (next to the other JupyterLab tests).
