"""The bookkeeping every training run shares, written once: cache lookup, lock, resume, periodic
checkpoint and record, final record. The classifier and the GAN loop use it like this:

    def train():                                     # runs while the folder is locked
        run = TrainingRun(folder, architecture, {"model": model, "optimizer": optimizer},
                          total=steps, record={..., "history": []}, progress_keys=("history",))
        run.resume(device)                           # from checkpoint.pt, when there is one
        for step in run.steps(stop_after, save_every=100, progress=True):
            ...                                      # the algorithm; append to run.record["history"]
        return run.finish()
    record = train_or_load(folder, lambda r: r.get("step") == steps, train)

A run folder holds `checkpoint.pt` (weights, optimiser states and everything the loop has
accumulated, written atomically) and `metrics.json` (the run record, rewritten at every
checkpoint so a reader can follow progress, and complete once the last step is done). The
checkpoint names its run and step and holds the digest of the record written with it, so a
record that was edited, damaged or restored from another time is not served: it is made again
from the checkpoint (a resumed run that has nothing left to train), with a warning.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from nbcode.runs.cache import (
    CorruptRunFileError,
    check_record,
    load_checkpoint,
    read_record,
    record_digest,
    run_lock,
    save_checkpoint,
    write_json,
)

RECORD = "metrics.json"
CHECKPOINT = "checkpoint.pt"
SAVE_SECONDS = 600.0  # also checkpoint after this much training since the last save (s)


def finished_record(folder: Path, finished: Callable[[dict], bool]) -> dict | None:
    """The record in `folder` when `finished(record)` says the run is complete and the record is
    the one its checkpoint was saved with (same run, step and digest), else None: then the run
    resumes from its checkpoint, which rewrites the record. A record that fails its checks says so.

    Raises:
        CorruptRunFileError, CheckpointMismatchError: the checkpoint of a finished record cannot be
            read, holds NaN, or belongs to another run (the message says to delete the folder).
    """
    record = read_record(folder / RECORD)
    if record is None or not finished(record):
        return None
    try:
        check_record(record, folder / RECORD)
    except CorruptRunFileError as error:
        warnings.warn(f"{error} Making it again from {folder / CHECKPOINT}.", stacklevel=2)
        return None
    if not (folder / CHECKPOINT).exists():
        warnings.warn(f"{folder / RECORD} says the run is finished, but {CHECKPOINT} is missing: training it "
                      f"again from its start", stacklevel=2)
        return None
    state = load_checkpoint(folder / CHECKPOINT, record["architecture"], keys=("record_digest",), run=folder.name)
    if state["step"] != record["step"] or state["record_digest"] != record_digest(record):
        warnings.warn(f"{folder / RECORD} is not the record its checkpoint (step {state['step']}) was saved with: "
                      f"it was edited or restored from another time. Making it again from the checkpoint.",
                      stacklevel=2)
        return None
    return record


def train_or_load(folder: Path, finished: Callable[[dict], bool], train: Callable[[], dict]) -> dict:
    """The finished record of the run in `folder` (read without the lock, so a read-only cache
    serves it), else `train()`, called while holding the folder's lock: a second process asking
    for the same run waits, then reads the result. Temporary files that a killed write left in
    the folder are removed first."""
    record = finished_record(folder, finished)
    if record is not None:
        return record
    with run_lock(folder):
        for stale in folder.glob(".*.tmp"):  # no other writer while we hold the lock
            stale.unlink()
        return finished_record(folder, finished) or train()


@dataclass
class TrainingRun:
    """One run folder's state while it trains.

    Attributes:
        folder: the run folder (created by `train_or_load`'s lock).
        architecture: names the model; a checkpoint of another architecture is refused.
        parts: what the checkpoint saves and restores by name: modules, optimisers, schedules
            (anything with state_dict / load_state_dict).
        total: the run's budget in steps.
        record: the run record; `progress_keys` name its entries the loop accumulates (the
            evaluation history, the per-iteration log), saved in the checkpoint as well.
        carry: what else the loop must carry over a resume (saved in the checkpoint only), e.g.
            the losses of steps since the last evaluation.
        done: steps completed; seconds: training wall time so far, resumed runs included.
    """

    folder: Path
    architecture: str
    parts: dict[str, Any]
    total: int
    record: dict
    progress_keys: tuple[str, ...]
    carry: dict[str, Any] = field(default_factory=dict)
    done: int = 0
    seconds: float = 0.0
    bar: Any = None

    def resume(self, device: torch.device | str) -> None:
        """Restore parts, progress, step and seconds from the folder's checkpoint, if there is one."""
        path = self.folder / CHECKPOINT
        if not path.exists():
            return
        keys = ("seconds", "carry", *self.progress_keys, *self.parts)
        state = load_checkpoint(path, self.architecture, device, keys=keys, run=self.folder.name)
        if state["step"] > self.total:
            raise CorruptRunFileError(f"{path} is at step {state['step']}, beyond this run's {self.total}: delete "
                                      f"the run folder {self.folder} to train it again.")
        for key, part in self.parts.items():
            part.load_state_dict(state[key])
        self.record.update({key: state[key] for key in self.progress_keys})
        self.done, self.seconds, self.carry = state["step"], state["seconds"], state["carry"]

    def steps(self, stop_after: int | None, save_every: int, progress: bool) -> Iterator[int]:
        """Yield the step numbers still to run (up to `stop_after` when given), behind a
        progress bar (`self.bar`). After every `save_every`-th step, the last step, the
        `stop_after` step and the first step that ends `SAVE_SECONDS` after the last save, save a
        checkpoint and the record: a run killed on a slow machine loses at most that much work
        (every step continues exactly from any checkpoint, as each is a function of its number)."""
        last = self.total if stop_after is None else min(self.total, stop_after)
        started, seconds_before = time.perf_counter(), self.seconds
        saved = started
        self.bar = tqdm(range(self.done, last), initial=self.done, total=self.total, desc=self.folder.name,
                        disable=not progress)
        for step in self.bar:
            yield step
            self.done, now = step + 1, time.perf_counter()
            if self.done % save_every == 0 or self.done in (self.total, last) or now - saved >= SAVE_SECONDS:
                self.seconds, saved = seconds_before + now - started, now
                self.save()
        self.bar.close()

    def save(self, **final: Any) -> None:
        """Update the record (step, seconds and any `final` entries), then write the checkpoint,
        which holds the record's digest, then the record (atomically, each)."""
        self.record.update(step=self.done, train_seconds=self.seconds, **final)
        state = {"architecture": self.architecture, "run": self.folder.name, "step": self.done,
                 "seconds": self.seconds, "carry": self.carry, "record_digest": record_digest(self.record),
                 **{key: self.record[key] for key in self.progress_keys},
                 **{key: part.state_dict() for key, part in self.parts.items()}}
        save_checkpoint(self.folder / CHECKPOINT, state)
        write_json(self.folder / RECORD, self.record)

    def finish(self, **final: Any) -> dict:
        """Save with `final` entries added to the record (e.g. the final accuracies) and return
        the record. Whatever the loop did (nothing, when the checkpoint held the last step asked
        for), record and checkpoint end consistent with each other, and on disk."""
        self.save(**final)
        return self.record
