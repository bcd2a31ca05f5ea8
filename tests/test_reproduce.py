"""`python -m nbcode.runs.reproduce`: every stage at the smoke profile, resumed without redoing finished
stages, exported small enough to commit, and shown by the book beside the reader's own runs."""
import json
import subprocess
import sys

import pytest
import torch
from matplotlib.image import imread

import nbcode.book.build
import nbcode.book.committed
import nbcode.runs.reproduce
from nbcode.book.committed import committed_stages
from nbcode.gan import LATENT
from nbcode.runs.cache import CorruptRunFileError
from nbcode.runs.gan import load_trained_generator
from nbcode.runs.profiles import get_profile
from nbcode.runs.reproduce import CLASSIFIER_RUNS, GAN_RUNS, binned, export, reproduce

SMOKE = get_profile("smoke")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return runs, reproduce(SMOKE, "synthetic", runs, progress=False)


def checkpoint_times(runs) -> dict:
    return {path: path.stat().st_mtime_ns for path in runs.rglob("checkpoint.pt")}


def test_every_stage_ends_with_a_complete_record(reproduced):
    runs, stages = reproduced
    assert [s.name for s in stages] == [*CLASSIFIER_RUNS, *GAN_RUNS, "evaluation conditional aw",
                                        "evaluation conditional aw improved", "evaluation unconditional aw",
                                        "evaluation conditional hinge", "evaluation sle conditional aw improved"]
    classifiers, gans, evaluations = stages[:4], stages[4:9], stages[9:]
    for stage in classifiers:
        assert "final" in stage.record and stage.record["step"] == SMOKE.classifier_steps
    assert [s.record["network"] for s in classifiers] == ["dsresnet"] * 3 + ["mobilenetv2"]
    assert classifiers[3].record["recipe"]["name"] == "improved" and classifiers[3].record["width_factor"] == 1
    for stage in gans:
        assert stage.record["step"] == SMOKE.gan_iterations
    aw, improved, hinge, sle = gans[0].record, gans[1].record, gans[3].record, gans[4].record
    assert hinge["settings"]["loss"] == "hinge" and aw["settings"]["loss"] == "aw"
    assert hinge["seed"] == aw["seed"] and hinge["iterations"] == aw["iterations"]  # the aw run's twin
    assert (aw["settings"]["name"], improved["settings"]["name"]) == ("paper", "improved")
    assert improved["settings"]["loss"] == "aw" and improved["settings"]["conditional"]
    assert [g.record["settings"]["generator"] for g in gans] == ["table1"] * 4 + ["sle"]
    assert {**sle["settings"], "generator": "table1"} == improved["settings"]  # only the generator differs
    assert sle["parameters"]["generator"] < improved["parameters"]["generator"]
    for stage in evaluations:
        assert stage.record["n_generated"] == SMOKE.fid_samples and "lpips_mean" in stage.record
    assert evaluations[-1].record["generator"] == "sle"


def test_a_second_call_redoes_nothing(reproduced, capsys):
    runs, _ = reproduced
    before = checkpoint_times(runs)
    again = reproduce(SMOKE, "synthetic", runs, progress=False)
    assert checkpoint_times(runs) == before
    assert "all done: 14 stages" in capsys.readouterr().out
    assert [s.record["run"] for s in again] == [s.record["run"] for s in reproduced[1]]


def test_chosen_stages_run_in_the_order_asked_and_an_unknown_one_is_named(reproduced, capsys):
    runs, everything = reproduced
    chosen = ["evaluation conditional aw", "classifier improved x1"]
    stages = reproduce(SMOKE, "synthetic", runs, progress=False, only=chosen)
    assert [s.name for s in stages] == chosen
    by_name = {s.name: s.record["run"] for s in everything}
    assert [s.record["run"] for s in stages] == [by_name[name] for name in chosen]
    assert "done: the 2 chosen of 14: 2 stages" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown stage.*'gan x'.*stages: classifier paper x1"):
        reproduce(SMOKE, "synthetic", runs, progress=False, only=["gan x"])


def test_an_interrupted_reproduction_resumes_where_it_stopped(tmp_path, monkeypatch):
    real_train_gan = nbcode.runs.reproduce.train_gan

    def interrupted(settings, *args, **kwargs):
        if settings.loss == "hinge":
            raise KeyboardInterrupt  # the session ended during the hinge twin
        return real_train_gan(settings, *args, **kwargs)

    monkeypatch.setattr(nbcode.runs.reproduce, "train_gan", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reproduce(SMOKE, "synthetic", tmp_path, progress=False)
    before = checkpoint_times(tmp_path)
    assert len(before) == 7  # four classifiers and three GANs finished
    monkeypatch.setattr(nbcode.runs.reproduce, "train_gan", real_train_gan)
    stages = reproduce(SMOKE, "synthetic", tmp_path, progress=False)
    after = checkpoint_times(tmp_path)
    assert all(after[path] == stamp for path, stamp in before.items())  # finished runs were not redone
    assert len(after) == 9 and stages[7].record["step"] == SMOKE.gan_iterations


def test_export_is_small_and_the_book_shows_it_labelled(reproduced, tmp_path, monkeypatch):
    runs, stages = reproduced
    folder = export(stages, SMOKE, tmp_path / "results", runs)
    assert folder.name.startswith("smoke-synthetic-")
    files = [p for p in folder.rglob("*") if p.is_file() and p.parent.name != "generators"]
    assert sum(p.stat().st_size for p in files) < 3_000_000 and not [p for p in files if p.suffix == ".pt"]
    assert len(list((folder / "grids").glob("*.png"))) == 5 and len(list((folder / "records").glob("*.json"))) == 14
    generators = list((folder / "generators").glob("*.pt"))  # the averaged generators alone, no D, no optimisers
    assert len(generators) == 5 and all(p.stat().st_size < 3_000_000 for p in generators)
    assert set(torch.load(generators[0], weights_only=True)) == {"architecture", "run", "step", "g_ema"}

    book = tmp_path / "book"
    book.mkdir()
    (book / "intro_header.md").write_text("# Title\n")
    monkeypatch.setattr(nbcode.book.build, "BOOK", book)
    monkeypatch.setattr(nbcode.book.build, "GENERATED", book / "_generated")
    monkeypatch.setattr(nbcode.book.committed, "RESULTS", tmp_path / "results")
    monkeypatch.setenv("NBCODE_RUNS", str(tmp_path / "no-local-runs"))
    nbcode.book.build.write_pages("quick")
    intro, results = (book / "intro.md").read_text(), (book / "results.md").read_text()
    assert "No finished runs at this profile" in intro  # the reader's own runs: none here
    assert "test accuracy" in intro and "LPIPS to the nearest training image" in intro
    assert "paper recipe" in intro and "improved recipe" in intro  # both GAN recipes on the card
    assert "synthetic, smoke profile" in intro and "(results/smoke-synthetic-" in intro
    assert "not comparable yet" in intro and "| reproduced |" not in intro  # synthetic is never the paper's data
    assert "## results/ export: smoke profile, synthetic" in results and "![Test accuracy" in results
    assert results.count("![gan-") == 5 and len(list((book / "_generated" / "results").rglob("*.png"))) == 5
    future = [line for line in intro.splitlines() if line.startswith("| Future work")]
    assert len(future) == 2 and all("no run yet" not in line for line in future)  # both variants ran
    assert "MobileNetV2 (93,180 parameters)" in future[0] and "SLE generator FID" in future[1]
    assert "validation (the status's split; test " in future[0]  # the numbers the status is computed from
    assert all(line.split(" | ")[-1].rstrip(" |") in ("better", "worse", "inconclusive") for line in future)


def test_binned_logs_keep_means_and_the_last_case():
    log = {"d_loss": [1.0, 3.0, 5.0, 7.0, 9.0], "case": ["a", "b", "c", "d", "e"]}
    thinned, size = binned(log, points=2)
    assert size == 3 and thinned == {"d_loss": [3.0, 8.0], "case": ["c", "e"]}


def test_the_command_line_documents_itself():
    result = subprocess.run([sys.executable, "-m", "nbcode.runs.reproduce", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--export" in result.stdout and "--profile" in result.stdout


def test_an_export_killed_midway_leaves_the_previous_one_whole(reproduced, tmp_path, monkeypatch):
    runs, stages = reproduced
    folder = export(stages, SMOKE, tmp_path / "results", runs)
    before = {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    written = []

    def killed_after_four(path, record):
        if len(written) == 4:
            raise KeyboardInterrupt  # a kill, or a full disk, in the middle of the export
        written.append(path)
        real_write_json(path, record)

    real_write_json = nbcode.runs.reproduce.write_json
    monkeypatch.setattr(nbcode.runs.reproduce, "write_json", killed_after_four)
    with pytest.raises(KeyboardInterrupt):
        export(stages, SMOKE, tmp_path / "results", runs)
    after = {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    assert after == before and written
    monkeypatch.setattr(nbcode.runs.reproduce, "write_json", real_write_json)
    assert export(stages, SMOKE, tmp_path / "results", runs) == folder  # the next export cleans up
    assert [path.name for path in (tmp_path / "results").iterdir()] == [folder.name]


def test_the_chapters_read_each_committed_stage_by_its_name(reproduced, tmp_path, monkeypatch):
    runs, stages = reproduced
    partial = [stage for stage in stages if stage.name in ("classifier paper x1", "evaluation conditional aw")]
    folder = export(partial, SMOKE, tmp_path / "results", runs)
    monkeypatch.setattr(nbcode.book.committed, "RESULTS", tmp_path / "results")
    [committed] = committed_stages("smoke")
    label, found = committed.label, committed.stages
    assert label.startswith("results/ export: smoke profile, synthetic, ")
    assert {name: record["run"] for name, record in found.items()} == {s.name: s.record["run"] for s in partial}
    assert found["evaluation conditional aw"]["kind"] == "evaluation" and committed_stages("paper") == []
    next((folder / "records").glob("evaluation-*.json")).write_text("{not json")
    with pytest.raises(CorruptRunFileError, match="not a readable run record"):
        committed_stages("smoke")  # a damaged committed record is an error, never a silent gap


def test_exports_from_separate_sessions_add_up_stage_by_stage(reproduced, tmp_path, monkeypatch):
    runs, stages = reproduced
    first = [stage for stage in stages if stage.name in ("classifier paper x1", "gan conditional aw")]
    later = [stage for stage in stages if stage.name in ("evaluation conditional aw", "classifier paper x1")]
    monkeypatch.setattr(nbcode.runs.reproduce, "git_commit", lambda: "aaaaaaa")
    folder = export(first, SMOKE, tmp_path / "results", runs)
    monkeypatch.setattr(nbcode.runs.reproduce, "git_commit", lambda: "bbbbbbb")  # a later session's export
    assert export(later, SMOKE, tmp_path / "results", runs) == folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [(line["stage"], line["commit"]) for line in manifest["stages"]] == [
        ("classifier paper x1", "bbbbbbb"), ("gan conditional aw", "aaaaaaa"), ("evaluation conditional aw", "bbbbbbb")]
    assert len(list((folder / "records").glob("*.json"))) == 3 and len(list((folder / "grids").glob("*.png"))) == 1
    monkeypatch.setattr(nbcode.book.committed, "RESULTS", tmp_path / "results")
    [committed] = committed_stages("smoke")
    assert "commits bbbbbbb, aaaaaaa, exported" in committed.label and len(committed.stages) == 3
    gan = next(stage for stage in first if stage.name == "gan conditional aw").record
    noise, labels = torch.randn(4, LATENT), torch.arange(4)
    with torch.no_grad():  # the exported generator is the run's own averaged generator
        torch.testing.assert_close(committed.generator("gan conditional aw")(noise, labels),
                                   load_trained_generator(gan, runs)(noise, labels))
    gan = folder / "records" / f"{manifest['stages'][1]['run']}.json"
    gan.write_text(json.dumps(json.loads(gan.read_text()) | {"data_source": {"loaded": "other images"}}))
    with pytest.raises(ValueError, match="'gan conditional aw' made of other data"):
        export(later, SMOKE, tmp_path / "results", runs)  # never mixed with, or replacing, other data's stages
    assert json.loads((folder / "manifest.json").read_text()) == manifest


def test_a_machine_without_the_runs_folder_evaluates_the_exported_generator(reproduced, tmp_path, monkeypatch):
    runs, stages = reproduced
    original = {stage.name: stage.record for stage in stages}
    gan = [stage for stage in stages if stage.name == "gan conditional aw"]
    folder = export(gan, SMOKE, tmp_path / "results", runs)

    def no_training(*args, **kwargs):
        raise AssertionError("the GAN was trained again")

    monkeypatch.setattr(nbcode.runs.reproduce, "train_gan", no_training)
    [stage] = reproduce(SMOKE, "synthetic", tmp_path / "new-machine", progress=False,
                        only=["evaluation conditional aw"], exported=folder)
    for key in ("fid", "kid_mean", "fid_floor", "lpips_mean"):  # the same generator, the same numbers
        assert stage.record[key] == pytest.approx(original["evaluation conditional aw"][key], rel=1e-5)
    export([stage], SMOKE, tmp_path / "results", tmp_path / "new-machine")
    lines = json.loads((folder / "manifest.json").read_text())["stages"]
    assert [line["stage"] for line in lines] == ["gan conditional aw", "evaluation conditional aw"]
    generator = folder / "generators" / f"{original['gan conditional aw']['run']}.pt"
    assert generator.exists()  # carried over
    generator.unlink()
    with pytest.raises(FileNotFoundError, match="is missing, so 'gan conditional aw' of .* cannot be evaluated"):
        reproduce(SMOKE, "synthetic", tmp_path / "another-machine", progress=False,
                  only=["evaluation conditional aw"], exported=folder)


def test_the_book_refuses_an_export_without_its_manifest(tmp_path, monkeypatch):
    (tmp_path / "results" / "paper-cifar10-cpu" / "records").mkdir(parents=True)
    monkeypatch.setattr(nbcode.book.committed, "RESULTS", tmp_path / "results")
    with pytest.raises(FileNotFoundError, match="paper-cifar10-cpu has no manifest.json"):
        nbcode.book.committed.load_committed()


def test_a_deleted_final_grid_is_drawn_again_never_replaced_by_an_earlier_one(reproduced, tmp_path):
    runs, stages = reproduced
    gan = next(stage.record for stage in stages if stage.record["kind"] == "gan")
    final = runs / "gan" / gan["run"] / f"samples_{gan['step']:06d}.png"
    original = imread(final)
    final.unlink()
    folder = export(stages, SMOKE, tmp_path / "results", runs)
    drawn = imread(folder / "grids" / f"{gan['run']}.png")
    assert abs(drawn - original).max() <= 1 / 255 + 1e-6  # the same generator (rounding of another layout)
