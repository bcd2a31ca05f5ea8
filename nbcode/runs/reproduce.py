"""The whole paper in one command, resumable stage by stage:

    python -m nbcode.runs.reproduce --profile paper --dataset cifar10 [--export results] [--only STAGE ...]

1. classifiers: the three runs of notebook 2 (paper recipe; improved; improved at 2x width), then
   notebook 8's MobileNetV2 of inverted residuals (improved recipe, the paper's future work);
2. GANs: the conditional aw-GAN with the paper's recipe and with ours (notebook 6), the
   unconditional aw-GAN, and a hinge-loss twin of the conditional run (same budget and seed), so
   that the paper's claim that the aw loss helps gets a full-budget test; then notebook 8's
   generator with skip-layer excitation and separable convs (improved recipe);
3. evaluation of each GAN: FID and KID of `profile.fid_samples` samples against as many test
   images, beside real training images against the same test images (the floor at that n), and
   LPIPS to the nearest training images beside real test images' (nbcode.metrics.nearest).

Every run is the cached, resumable run of nbcode.runs.classifier / nbcode.runs.gan / nbcode.metrics.fid: a stage
that finished earlier is read back, one that was interrupted continues from its last
checkpoint, so the command can be split across sessions (run it again until it says "all done").
Each stage prints its wall time. `--export DIR` then copies the records (run records with their
per-iteration logs binned, evaluation records, the final sample grids) into
DIR/<profile>-<dataset>-<device>/, small enough to commit, with each GAN's averaged generator
(2.2 MB), keeping the stages an earlier export there holds and this call did not run; the book
shows them beside the reader's own runs, labelled with their device and dataset. An evaluation
whose GAN is exported there but not in the runs folder (a new machine) scores the exported
generator instead of training the GAN again.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path

import torch

from nbcode.book.committed import read_committed
from nbcode.data.datasets import DataMissingError, dataset_name, ensure_downloaded
from nbcode.gan_recipe import GAN_RECIPES
from nbcode.metrics.evaluation import evaluate_gan
from nbcode.runs.cache import git_commit, write_json
from nbcode.runs.classifier import train_classifier
from nbcode.runs.gan import export_generator, final_grid, is_finished, run_folder, train_gan
from nbcode.runs.profiles import PROFILES, Profile, get_profile, pick_device

CLASSIFIER_RUNS = {"classifier paper x1": ("paper", 1, "dsresnet"),
                   "classifier improved x1": ("improved", 1, "dsresnet"),
                   "classifier improved x2": ("improved", 2, "dsresnet"),
                   "classifier mobilenetv2 improved x1": ("improved", 1, "mobilenetv2")}
GAN_RUNS = {"gan conditional aw": GAN_RECIPES["paper"],
            "gan conditional aw improved": GAN_RECIPES["improved"],
            "gan unconditional aw": replace(GAN_RECIPES["paper"], conditional=False),
            "gan conditional hinge": replace(GAN_RECIPES["paper"], loss="hinge"),
            "gan sle conditional aw improved": replace(GAN_RECIPES["improved"], generator="sle")}
EVALUATIONS = {f"evaluation {name[4:]}": name for name in GAN_RUNS}  # stage -> the GAN stage it scores
LOG_POINTS = 1000  # per-iteration GAN logs are exported as this many bin means at most


@dataclass
class Stage:
    """One result of the reproduction: its name, its record and the seconds this call spent on it."""

    name: str
    record: dict
    seconds: float


def device_name(device: torch.device) -> str:
    """A short, readable name of the device, e.g. "NVIDIA H200" or "cpu (2 threads)"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)" if device.type == "cpu" else device.type


def stage_names() -> list[str]:
    """The names of reproduce's stages, in its order (the keys of `planned_stages`)."""
    return [*CLASSIFIER_RUNS, *GAN_RUNS, *EVALUATIONS]


def planned_stages(profile: Profile, dataset: str | None = None, runs_dir: str | Path | None = None,
                   progress: bool = True, exported: Path | None = None) -> dict[str, Callable[[], dict]]:
    """Every stage's name and the call that runs (or reads back) its record, in reproduce's order:
    the classifiers, the GANs, then each GAN's evaluation (EVALUATIONS; it trains its GAN first if
    that has not finished, unless the export folder `exported` holds that run with its generator).
    A GAN stage's record is kept once returned, so its evaluation in the same call does not load
    the training data again to find the run."""
    work: dict[str, Callable[[], dict]] = {}
    for name, (recipe, width, network) in CLASSIFIER_RUNS.items():
        work[name] = partial(train_classifier, recipe, profile, width_factor=width, network=network,
                             dataset=dataset, runs_dir=runs_dir, progress=progress)
    for name, settings in GAN_RUNS.items():
        work[name] = cache(partial(train_gan, settings, profile, dataset=dataset, runs_dir=runs_dir,
                                   progress=progress))
    for name, gan in EVALUATIONS.items():
        found = partial(_exported_gan, exported, gan, profile, dataset, runs_dir)
        work[name] = partial(_evaluate, work[gan], found, profile, runs_dir, progress)
    return work


def _evaluate(train: Callable[[], dict], exported: Callable[[], tuple[dict, Path] | None], profile: Profile,
              runs_dir: str | Path | None, progress: bool) -> dict:
    """The evaluation record of the GAN run that `train` returns (trained first or read back), or of
    the exported run and generator file that `exported` finds instead of training it again."""
    found = exported()
    if found is None:
        return evaluate_gan(train(), profile, runs_dir, progress)
    record, generator = found
    return evaluate_gan(record, profile, runs_dir, progress, checkpoint=generator)


def _exported_gan(folder: Path | None, stage: str, profile: Profile, dataset: str | None,
                  runs_dir: str | Path | None) -> tuple[dict, Path] | None:
    """The exported record and generator file of GAN stage `stage` when the runs folder has not
    finished its run and the export in `folder` holds that very run (same name: same settings,
    data, budget and seed), e.g. on a machine that lost its runs folder; else None.

    Raises:
        FileNotFoundError: the export holds the run's record but not its generator file.
    """
    if folder is None or not (folder / "manifest.json").exists():
        return None
    run = run_folder(GAN_RUNS[stage], profile, dataset=dataset, runs_dir=runs_dir)
    lines = json.loads((folder / "manifest.json").read_text())["stages"]
    if not any(line["stage"] == stage and line["run"] == run.name for line in lines):
        return None
    if is_finished(run, profile):
        return None  # the run folder is here: its record and checkpoint are the originals
    record = read_committed(folder / "records" / record_file("gan", run.name))
    generator = folder / "generators" / f"{run.name}.pt"
    if not generator.exists():
        raise FileNotFoundError(f"{generator} is missing, so {stage!r} of {folder} cannot be evaluated without "
                                f"training it again: restore the file, or run {stage!r} (it is then exported anew)")
    return record, generator


def reproduce(profile: Profile, dataset: str | None = None, runs_dir: str | Path | None = None,
              progress: bool = True, only: list[str] | None = None, exported: Path | None = None) -> list[Stage]:
    """Run (or read back) every stage at `profile`, or the stages named in `only` in that order
    (e.g. the most wanted first on a GPU lent for minutes); print each stage's wall time as it ends.
    An evaluation whose GAN run is not in the runs folder but in the export folder `exported`
    (`export_folder`) scores the exported generator instead of training the GAN again.

    Raises:
        ValueError: `only` names a stage that does not exist (the message lists them all).
    """
    work = planned_stages(profile, dataset, runs_dir, progress, exported)
    unknown = [name for name in only or () if name not in work]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(map(repr, unknown))}; stages: {', '.join(work)}")
    stages = []
    for name in only or work:
        started = time.perf_counter()
        record = work[name]()
        stages.append(Stage(name, record, time.perf_counter() - started))
        print(f"[{name}] {stages[-1].seconds:7.1f} s  {record['run']}", flush=True)
    done = "all done" if len(stages) == len(work) else f"done: the {len(stages)} chosen of {len(work)}"
    print(f"{done}: {len(stages)} stages at profile {profile.name}, "
          f"{sum(stage.seconds for stage in stages):.1f} s in this call")
    return stages


def binned(log: dict[str, list], points: int = LOG_POINTS) -> tuple[dict[str, list], int]:
    """A GAN log with each numeric series replaced by the means of consecutive bins (at most
    `points` of them), and the case series by its last value per bin; and the bin size."""
    length = max((len(v) for v in log.values()), default=0)
    size = max(1, -(-length // points))  # ceil(length / points)
    thinned = {}
    for key, values in log.items():
        if values and isinstance(values[0], str):
            thinned[key] = [values[min(i + size, len(values)) - 1] for i in range(0, len(values), size)]
        else:
            thinned[key] = [sum(values[i:i + size]) / len(values[i:i + size]) for i in range(0, len(values), size)]
    return thinned, size


def export_folder(destination: str | Path, profile: Profile, dataset: str) -> Path:
    """Where `export` writes this device's stages at `profile` on `dataset` ("cifar10", ...):
    destination/<profile>-<dataset>-<device>/, e.g. results/paper-cifar10-cpu."""
    return Path(destination) / f"{profile.name}-{dataset}-{device_name(pick_device()).split(' (')[0].replace(' ', '-')}"


def export(stages: list[Stage], profile: Profile, destination: str | Path,
           runs_dir: str | Path | None = None) -> Path:
    """Copy the stages' records and final sample grids to destination/<profile>-<dataset>-<device>/
    with a manifest naming the device, dataset, and each stage's commit, export date and wall time.
    Returns that folder.

    An earlier export in that folder keeps the stages this call does not export again, so stages
    run in separate sessions (or on machines that lose their runs folder in between) add up to one
    export. It is written into a hidden folder beside it and swapped in only once complete, so a
    kill or a full disk mid-export leaves the previous export as it was.

    Raises:
        ValueError: the stages, or those of the earlier export in that folder, were made of other data.
    """
    first = stages[0].record
    folder = export_folder(destination, profile, first["dataset"])
    partial, previous = folder.with_name(f".{folder.name}.partial"), folder.with_name(f".{folder.name}.previous")
    for leftover in (partial, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    stamp = {"commit": git_commit(), "exported": time.strftime("%Y-%m-%d")}
    lines = [stamp | _export_stage(stage, partial, runs_dir) for stage in stages]
    source = _data_source(stages)
    lines += _carry_earlier_stages(folder, partial, source, {stage.name for stage in stages})
    order = stage_names()
    write_json(partial / "manifest.json", {"profile": profile.name, "dataset": first["dataset"], "data": source,
                                           "device": device_name(pick_device()), **stamp,
                                           "stages": sorted(lines, key=lambda line: order.index(line["stage"]))})
    if folder.exists():
        folder.rename(previous)
    partial.rename(folder)
    shutil.rmtree(previous, ignore_errors=True)
    return folder


def _data_source(stages: list[Stage]) -> dict:
    """The data every stage was made of: the `data_source` of its record (an evaluation's is its run's).

    Raises:
        ValueError: the stages were made of different data, or none of their records says which.
    """
    sources = [stage.record["data_source"] for stage in stages if "data_source" in stage.record]
    if not sources or any(source != sources[0] for source in sources):
        raise ValueError(f"one export holds the stages of one dataset; these name {sources or 'none'}")
    return sources[0]


def _carry_earlier_stages(folder: Path, partial: Path, source: dict, exported: set[str]) -> list[dict]:
    """Copy into `partial` the records (and GAN grids and generators) of the stages that the earlier
    export in `folder`, if any, holds and `exported` does not; return their manifest lines, each
    with the commit and date of the export that made it.

    Raises:
        ValueError: a carried record was made of other data than `source` (a `data_source`).
    """
    if not (folder / "manifest.json").exists():
        return []
    earlier = json.loads((folder / "manifest.json").read_text())
    carried = [line for line in earlier["stages"] if line["stage"] not in exported]
    for line in carried:
        record = read_committed(folder / "records" / record_file(line["kind"], line["run"]))
        if record.get("data_source", source) != source:
            raise ValueError(f"{folder} holds {line['stage']!r} made of other data ({record['data_source']}) than "
                             f"this export ({source}). Move that export away to write this one.")
        files = [Path("records") / record_file(line["kind"], line["run"])]
        if line["kind"] == "gan":
            files += [Path("grids") / f"{line['run']}.png", Path("generators") / f"{line['run']}.pt"]
        for file in files:
            (partial / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / file, partial / file)
    return [{"commit": earlier["commit"], "exported": earlier["exported"]} | line for line in carried]


def record_file(kind: str, run: str) -> str:
    """The file name of a record in an export's records/: the run's name, "evaluation-" before it
    for the evaluation of a GAN run (which shares the run's name)."""
    return f"evaluation-{run}.json" if kind == "evaluation" else f"{run}.json"


def _export_stage(stage: Stage, folder: Path, runs_dir: str | Path | None) -> dict:
    """Write one stage's record (a GAN's log binned, with its final sample grid) into `folder`;
    return its line of the manifest."""
    record = dict(stage.record)
    if record["kind"] == "gan":
        record["log"], record["log_bin"] = binned(record["log"])
        (folder / "grids").mkdir(parents=True, exist_ok=True)
        shutil.copy(final_grid(stage.record, runs_dir), folder / "grids" / f"{record['run']}.png")
        export_generator(stage.record, folder / "generators" / f"{record['run']}.pt", runs_dir)
    write_json(folder / "records" / record_file(record["kind"], record["run"]), record)
    return {"stage": stage.name, "run": record["run"], "kind": record["kind"],
            "seconds_this_call": round(stage.seconds, 1), "train_seconds": record.get("train_seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.runs.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default=None, help="default: $NBCODE_PROFILE or quick")
    parser.add_argument("--dataset", choices=["cifar100", "cifar10", "synthetic"], default=None)
    parser.add_argument("--runs-dir", default=None, help="default: $NBCODE_RUNS or ~/.cache/nbcode/runs")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="copy the records and final grids to DIR/<profile>-<dataset>-<device>/ (e.g. results)")
    parser.add_argument("--only", nargs="+", metavar="STAGE", default=None, choices=stage_names(),
                        help="these stages only, in this order (default: all of them, in this order): "
                             + ", ".join(map(repr, stage_names())))
    args = parser.parse_args()
    profile = get_profile(args.profile)
    try:
        ensure_downloaded(profile, args.dataset)
    except DataMissingError as error:
        raise SystemExit(str(error)) from None
    print(f"reproducing at profile {profile.name} on {dataset_name(args.dataset)}, device "
          f"{device_name(pick_device())}", flush=True)
    exported = export_folder(args.export, profile, dataset_name(args.dataset)) if args.export else None
    stages = reproduce(profile, args.dataset, args.runs_dir, only=args.only, exported=exported)
    if args.export:
        print(f"exported to {export(stages, profile, args.export, args.runs_dir)}")
    print(json.dumps({stage.name: round(stage.seconds, 1) for stage in stages}))


if __name__ == "__main__":
    main()
