import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import torch

import nbcode.classifier_recipe
from nbcode.book.verdicts import recipe_verdict
from nbcode.classifier_recipe import get_recipe
from nbcode.data.datasets import load_for_profile
from nbcode.metrics.recognisability import per_class_accuracy
from nbcode.runs.cache import CheckpointMismatchError, load_checkpoint, save_checkpoint
from nbcode.runs.classifier import input_statistics, load_trained_classifier, run_name, train_classifier
from nbcode.runs.precision import training_dtype
from nbcode.runs.profiles import get_profile, pick_device

TINY = dataclasses.replace(get_profile("smoke"), name="tiny", classifier_steps=12, classifier_batch=32,
                           eval_every=4, eval_images=64, train_limit=512)


def checkpoint_of(runs, record) -> dict:
    return torch.load(runs / "classifier" / record["run"] / "checkpoint.pt", weights_only=True)


def test_smoke_training_beats_chance_clearly_on_synthetic_data(tmp_path):
    profile = dataclasses.replace(get_profile("smoke"), name="learn", classifier_steps=80, eval_every=40)
    record = train_classifier("improved", profile, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert record["data"]["train"].startswith("synthetic")
    chance = 1 / 100
    assert record["history"][-1]["validation"] > 8 * chance
    assert record["final"]["validation"]["evals"] == 1  # the last quarter of 2 evaluations


def test_resumed_run_ends_with_identical_weights_also_when_its_folder_was_carried_elsewhere(tmp_path, monkeypatch):
    straight = train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path / "a", progress=False)
    partial = train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path / "b", progress=False,
                               stop_after=6)
    assert partial["step"] == 6 and "final" not in partial
    # the README's way to carry an unfinished stage to another machine: copy its run folder alone
    shutil.copytree(tmp_path / "b" / "classifier" / partial["run"], tmp_path / "c" / "classifier" / partial["run"])
    trained = []
    monkeypatch.setattr("nbcode.runs.classifier.classifier_step",
                        lambda *args: trained.append(1) or nbcode.classifier_recipe.classifier_step(*args))
    resumed = train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path / "c", progress=False)
    assert len(trained) == 12 - 6  # it went on from the carried checkpoint, not from step 0
    a, b = checkpoint_of(tmp_path / "a", straight), checkpoint_of(tmp_path / "c", resumed)
    assert a["step"] == b["step"] == 12
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [h["validation"] for h in straight["history"]] == [h["validation"] for h in resumed["history"]]


def test_finished_runs_are_loaded_not_retrained(tmp_path):
    first = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    path = tmp_path / "classifier" / first["run"] / "checkpoint.pt"
    stamp = path.stat().st_mtime_ns
    again = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert again == first and path.stat().st_mtime_ns == stamp
    model = load_trained_classifier(first, tmp_path)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_checkpoint_of_another_architecture_is_refused_clearly(tmp_path):
    first = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False, stop_after=4)
    runs = tmp_path / "classifier"
    train, test = load_for_profile(TINY, "train", "synthetic"), load_for_profile(TINY, "test", "synthetic")
    shutil.copytree(runs / first["run"], runs / run_name(get_recipe("paper"), 2, train, test, TINY, 0,
                                                                 training_dtype(pick_device())))
    with pytest.raises(CheckpointMismatchError, match=r"not of 'DSResNet\(widths=\(64, 128, 192, 256\)"):
        train_classifier("paper", TINY, width_factor=2, dataset="synthetic", runs_dir=tmp_path, progress=False)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"architecture": "A", "run": "r", "step": 1})

    def crash(state, file):
        with open(file, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"architecture": "A", "run": "r", "step": 2})
    assert load_checkpoint(path, "A")["step"] == 1


def test_unknown_recipe_lists_the_valid_ones():
    with pytest.raises(ValueError, match="paper, improved"):
        get_recipe("fancy")


def test_command_line_trains_headless(tmp_path):
    env = {**os.environ, "NBCODE_RUNS": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "nbcode.runs.classifier", "--profile", "smoke",
                             "--dataset", "synthetic"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "test" in result.stdout and "validation" in result.stdout
    assert list((tmp_path / "classifier").glob("*/metrics.json"))


def test_the_recipe_verdict_follows_the_numbers():
    def record(mean, std, evals=3, n=1000, seed=0, network="dsresnet"):
        return {"final": {"validation": {"mean": mean, "std": std, "evals": evals}}, "eval_images": {"validation": n},
                "recipe": {"name": "r"}, "width_factor": 1, "dataset": "d", "profile": "p", "steps": 10, "batch": 2,
                "seed": seed, "network": network}
    assert recipe_verdict(record(0.50, 0.005), record(0.60, 0.005)).text.endswith("better at this budget.")
    assert recipe_verdict(record(0.60, 0.005), record(0.50, 0.005)).text.endswith("worse at this budget.")
    assert recipe_verdict(record(0.50, 0.005), record(0.51, 0.005)).text.endswith("inconclusive at this budget.")
    # one evaluation (std 0) on 100 images: the sampling error alone makes 4 points inconclusive
    assert "+4.0 points" in recipe_verdict(record(0.50, 0.0, 1, 100), record(0.54, 0.0, 1, 100)).text
    assert recipe_verdict(record(0.5, 0.0), record(0.5, 0.0, seed=1)).text.startswith("r x1 seed 1 - r x1 seed 0 =")
    # two networks at one recipe and width are told apart by name, not left as "r x1 - r x1"
    assert recipe_verdict(record(0.5, 0.0), record(0.5, 0.0, network="mobilenetv2")).text.startswith(
        "mobilenetv2 r x1 - dsresnet r x1 =")
    assert recipe_verdict(record(0.50, 0.0, 1, 100), record(0.54, 0.0, 1, 100)).text.endswith("inconclusive at this budget.")


def test_each_ablation_undoes_exactly_one_change():
    from dataclasses import asdict

    from nbcode.classifier_recipe import RECIPES, ablations
    improved, paper = asdict(RECIPES["improved"]), asdict(RECIPES["paper"])
    undone = {"AdamW + weight decay": {"optimizer", "weight_decay"}, "one-cycle schedule": {"schedule", "lr"},
              "label smoothing": {"label_smoothing"}}
    assert set(ablations()) == set(undone)  # flip TTA is read off the improved run (without_flip_tta)
    for change, recipe in ablations().items():
        fields = asdict(recipe)
        differing = {k for k in fields if k != "name" and fields[k] != improved[k]}
        assert differing == undone[change], change
        assert all(fields[k] == paper[k] for k in differing)  # back to the paper's setting
        assert recipe.name != "improved"  # its own run folder and label


def test_the_flip_tta_ablation_is_the_same_run_scored_without_flips(tmp_path):
    from nbcode.runs.classifier import without_flip_tta
    record = train_classifier("improved", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    plain = without_flip_tta(record)
    assert plain["run"] == record["run"] and not plain["recipe"]["flip_tta"]
    assert [h["validation"] for h in plain["history"]] == [h["validation_no_tta"] for h in record["history"]]
    assert plain["full_splits"]["test"] == record["full_splits"]["test_no_tta"]
    assert plain["full_splits"]["images"]["test"] == len(load_for_profile(TINY, "test", "synthetic"))
    with pytest.raises(ValueError, match="without flip TTA"):
        without_flip_tta(plain)


def test_precision_is_part_of_the_run_and_fp32_can_be_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("NBCODE_PRECISION", "fp32")
    record = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    assert record["precision"] == "fp32" and "-fp32-" in record["run"]
    monkeypatch.setenv("NBCODE_PRECISION", "bf16")
    assert "-bf16-" in train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path,
                                         progress=False)["run"]
    monkeypatch.setenv("NBCODE_PRECISION", "fp16")
    with pytest.raises(ValueError, match="valid: auto, bf16, fp32"):
        train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)


def test_a_loaded_classifier_with_its_input_statistics_scores_as_its_record_says(tmp_path, monkeypatch):
    monkeypatch.setenv("NBCODE_PRECISION", "fp32")  # the record's scores, in the precision used here
    record = train_classifier("paper", TINY, dataset="synthetic", runs_dir=tmp_path, progress=False)
    test = load_for_profile(TINY, "test", "synthetic")
    mean, std = input_statistics(record, load_for_profile(TINY, "train", "synthetic"))
    accuracy = per_class_accuracy(load_trained_classifier(record, tmp_path), test.images, test.labels, mean, std)
    counts = torch.bincount(test.labels, minlength=len(accuracy)).float()
    overall = (accuracy.nan_to_num() * counts).sum() / counts.sum()
    assert overall.item() == pytest.approx(record["full_splits"]["test"], abs=1e-6)


@pytest.mark.parametrize("changes", [{"lr": float("nan")}, {"lr": 0.0}, {"weight_decay": -0.1},
                                     {"label_smoothing": 1.0}, {"optimizer": "sgd"}, {"schedule": "cosine"}])
def test_recipes_are_validated_where_they_are_made(changes):
    from dataclasses import replace

    from nbcode.classifier_recipe import RECIPES
    with pytest.raises(ValueError):
        replace(RECIPES["improved"], **changes)
