"""The committed exports of `python -m nbcode.runs.reproduce --export results`: records of runs at
budgets a laptop cannot reach in an hour (the paper profile), read by the book's landing and
results pages and by the chapters that set them beside the reader's own runs."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure

from nbcode.book.plots import image_grid
from nbcode.book.report import with_training_precision
from nbcode.gan import to_uint8
from nbcode.runs.cache import CorruptRunFileError, check_record, parse_record
from nbcode.runs.gan import load_trained_generator

RESULTS = Path(__file__).resolve().parents[2] / "results"  # one folder per export: <profile>-<dataset>-<device>


def read_committed(path: Path) -> dict:
    """The committed record at `path`, checked (`check_record`).

    Raises:
        CorruptRunFileError: it is not a readable JSON object or fails its checks: a committed
            number is never left out or shown wrong in silence.
    """
    try:
        record = parse_record(path)
    except CorruptRunFileError as error:
        raise CorruptRunFileError(f"not a readable run record: {error}. Export it again or remove it.") from error
    check_record(record, path)
    return record


def load_committed() -> list[tuple[str, dict, list[dict]]]:
    """(folder name, manifest, records) per export folder of results/, in name order; evaluation
    records carry their GAN's training precision (`with_training_precision`).

    Raises:
        FileNotFoundError: a folder has no manifest.json (an incomplete export).
        CorruptRunFileError: a record is unreadable or fails its checks (`read_committed`).
    """
    committed = []
    for folder in sorted(path for path in RESULTS.glob("*") if path.is_dir() and not path.name.startswith(".")):
        if not (folder / "manifest.json").exists():
            raise FileNotFoundError(f"{folder} has no manifest.json: it is not a complete export. Export it again "
                                    f"(python -m nbcode.runs.reproduce ... --export {RESULTS.name}) or remove it.")
        records = [read_committed(path) for path in sorted((folder / "records").glob("*.json"))]
        records = with_training_precision(records)
        committed.append((folder.name, json.loads((folder / "manifest.json").read_text()), records))
    return committed


def committed_label(manifest: dict) -> str:
    """How a committed export is named on the pages: profile, dataset, device, and the commits and
    dates of the exports its stages came from (one export may gather stages from several)."""
    made = [(line.get("commit", manifest["commit"]), line.get("exported", manifest["exported"]))
            for line in manifest["stages"]]
    commits = list(dict.fromkeys(commit for commit, _ in made))
    dates = sorted({date for _, date in made})
    span = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return (f"results/ export: {manifest['profile']} profile, {manifest['dataset']}, {manifest['device']}, "
            f"{'commits' if len(commits) > 1 else 'commit'} {', '.join(commits)}, exported {span}")


@dataclass
class CommittedExport:
    """One committed export: its label for the pages (`committed_label`), its folder, and its
    records by reproduce's stage names ("classifier paper x1", "evaluation conditional aw", ...);
    it holds only the stages that had finished when it was made."""

    label: str
    folder: Path
    stages: dict[str, dict]

    def generator(self, stage: str) -> torch.nn.Module:
        """The averaged generator of GAN stage `stage`, in eval mode, from the export's
        generators/<run>.pt (checked to be of that run and step)."""
        record = self.stages[stage]
        return load_trained_generator(record, checkpoint=self.folder / "generators" / f"{record['run']}.pt")

    def sample_grid(self, stage: str, noise: torch.Tensor) -> Figure:
        """Samples of GAN stage `stage` from `noise` (N, LATENT), twelve to a row, not picked: for a
        conditional GAN one class per row (the first N // 12 classes), captioned with its name; for
        an unconditional one the same noise with no class asked. Titled with the run's budget."""
        record = self.stages[stage]
        conditional = record["settings"]["conditional"]
        shown = torch.arange(min(len(noise) // 12, len(record["classes"])))
        labels = shown.repeat_interleave(12)
        with torch.no_grad():
            images = to_uint8(self.generator(stage)(noise[:len(labels)], labels if conditional else None))
        captions = ([record["classes"][c][:12] if i == 0 else "" for c in shown.tolist() for i in range(12)]
                    if conditional else None)
        return image_grid(images, captions, ncols=12, size=0.95, title_loc="left",
                          title=f"{stage}: {record['iterations']:,} iterations x {record['batch']}, "
                                f"{record['dataset']}, {record['profile']} profile ({self.folder.name})")


def committed_stages(profile: str) -> list[CommittedExport]:
    """Every committed export made at `profile`, e.g. "paper", in folder-name order."""
    exports = []
    for name, manifest, records in load_committed():
        if manifest["profile"] == profile:
            by_run = {(record["kind"], record["run"]): record for record in records}
            exports.append(CommittedExport(committed_label(manifest), RESULTS / name,
                                           {line["stage"]: by_run[line["kind"], line["run"]]
                                            for line in manifest["stages"]}))
    return exports
