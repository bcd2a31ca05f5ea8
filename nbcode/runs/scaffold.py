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
checkpoint so a reader can follow progress, and complete once the last step is done).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from nbcode.runs.cache import load_checkpoint, read_record, run_lock, save_checkpoint, write_json

RECORD = "metrics.json"
CHECKPOINT = "checkpoint.pt"


def finished_record(folder: Path, finished: Callable[[dict], bool]) -> dict | None:
    """The record in `folder` when `finished(record)` says the run is complete, else None."""
    record = read_record(folder / RECORD)
    return record if record is not None and finished(record) else None


def train_or_load(folder: Path, finished: Callable[[dict], bool], train: Callable[[], dict]) -> dict:
    """The finished record of the run in `folder`, else `train()`, called while holding the
    folder's lock: a second process asking for the same run waits, then reads the result."""
    with run_lock(folder):
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
        done: steps completed; seconds: training wall time so far, resumed runs included.
    """

    folder: Path
    architecture: str
    parts: dict[str, Any]
    total: int
    record: dict
    progress_keys: tuple[str, ...]
    done: int = 0
    seconds: float = 0.0
    bar: Any = None

    def resume(self, device: torch.device | str) -> None:
        """Restore parts, progress, step and seconds from the folder's checkpoint, if there is one."""
        path = self.folder / CHECKPOINT
        if not path.exists():
            return
        keys = ("step", "seconds", *self.progress_keys, *self.parts)
        state = load_checkpoint(path, self.architecture, device, keys=keys)
        for key, part in self.parts.items():
            part.load_state_dict(state[key])
        self.record.update({key: state[key] for key in self.progress_keys})
        self.done, self.seconds = state["step"], state["seconds"]

    def steps(self, stop_after: int | None, save_every: int, progress: bool) -> Iterator[int]:
        """Yield the step numbers still to run (up to `stop_after` when given), behind a
        progress bar (`self.bar`). After every `save_every`-th step, the last step and the
        `stop_after` step, save a checkpoint and the record."""
        last = self.total if stop_after is None else min(self.total, stop_after)
        started, seconds_before = time.perf_counter(), self.seconds
        self.bar = tqdm(range(self.done, last), initial=self.done, total=self.total, desc=self.folder.name,
                        disable=not progress)
        for step in self.bar:
            yield step
            self.done = step + 1
            if self.done % save_every == 0 or self.done in (self.total, last):
                self.seconds = seconds_before + time.perf_counter() - started
                self.save()
        self.bar.close()

    def save(self) -> None:
        """Write the checkpoint, then the record (atomically, each)."""
        state = {"architecture": self.architecture, "step": self.done, "seconds": self.seconds,
                 **{key: self.record[key] for key in self.progress_keys},
                 **{key: part.state_dict() for key, part in self.parts.items()}}
        save_checkpoint(self.folder / CHECKPOINT, state)
        self.record.update(step=self.done, train_seconds=self.seconds)
        write_json(self.folder / RECORD, self.record)

    def finish(self, **final: Any) -> dict:
        """Write the record with `final` entries added (e.g. the final accuracies) and return it.
        Whatever the loop did (nothing, when the checkpoint held the last step asked for), the
        record ends consistent with the checkpoint, and on disk."""
        self.record.update(step=self.done, train_seconds=self.seconds, **final)
        write_json(self.folder / RECORD, self.record)
        return self.record
