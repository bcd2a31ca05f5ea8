"""Checkpoints written atomically and read back safely, run folders, their locks and run records.

    save_checkpoint(path, {"step": 100, "model": model.state_dict(), ...})
    state = load_checkpoint(path, architecture="DSResNet(32, 64, 96, 128)", keys=("step", "model"))

A checkpoint is a dict of tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: no pickled code runs when a file is opened. Every write goes
to a temporary file of its own beside the target, then is renamed over it, so a crash or a
second process never leaves a half-written file. A run folder is locked while it trains
(`run_lock`): a second process asking for the same run waits, then reads the first one's result.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from filelock import FileLock, Timeout

RUNS_VARIABLE = "NBCODE_RUNS"


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for another model than the one loading it."""


class CorruptRunFileError(ValueError):
    """A file of a run folder is truncated, empty or does not hold what it should."""


def runs_root(root: str | Path | None = None) -> Path:
    """`root`, else $NBCODE_RUNS, else ~/.cache/nbcode/runs: where trained artefacts are cached."""
    return Path(root or os.environ.get(RUNS_VARIABLE) or Path.home() / ".cache" / "nbcode" / "runs")


def settings_hash(settings: dict) -> str:
    """Eight hex digits naming a dict of settings (JSON with sorted keys): the part of a run's
    folder name that changes whenever anything that shapes its result does."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def _replace_atomically(path: Path, write: Callable[[str], object]) -> None:
    """Call write(temporary_path) on a fresh temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically: a crash mid-write leaves the previous checkpoint intact."""
    _replace_atomically(path, lambda temporary: torch.save(state, temporary))


def load_checkpoint(path: Path, architecture: str, device: torch.device | str = "cpu",
                    keys: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint with weights_only=True and check it was written for `architecture`.

    Args:
        keys: entries the checkpoint must hold (besides "architecture").
    Raises:
        CorruptRunFileError: the file cannot be read or is not a dict with `keys`; names the file.
        CheckpointMismatchError: the file records another architecture; the message names both.
    """
    fix = f"Delete {path} to train this run from its start (or restore the file from a backup)."
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise CorruptRunFileError(f"{path} cannot be read ({type(error).__name__}: {str(error)[:200]}). "
                                  f"It is truncated or corrupted. {fix}") from error
    if not isinstance(state, dict):
        raise CorruptRunFileError(f"{path} holds a {type(state).__name__}, not a checkpoint dict. {fix}")
    if state.get("architecture") != architecture:
        raise CheckpointMismatchError(
            f"{path} holds a checkpoint of {state.get('architecture')!r}, not of {architecture!r}. "
            f"Delete it, or load it with the model it was trained with.")
    missing = [key for key in keys if key not in state]
    if missing:
        raise CorruptRunFileError(f"{path} lacks {', '.join(missing)}: it is not a complete checkpoint. {fix}")
    return state


def write_json(path: Path, record: dict) -> None:
    """Write a metrics record as indented JSON, atomically."""
    _replace_atomically(path, lambda temporary: Path(temporary).write_text(json.dumps(record, indent=2)))


def read_record(path: Path) -> dict | None:
    """The run record at `path`, or None when there is none or it is not a valid JSON object
    (then with a warning: the run is treated as incomplete and resumes from its checkpoint)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        warnings.warn(f"{path} is not valid JSON ({error}); treating the run as incomplete", stacklevel=2)
        return None
    if not isinstance(record, dict):
        warnings.warn(f"{path} holds a {type(record).__name__}, not a run record; treating the run as incomplete",
                      stacklevel=2)
        return None
    return record


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of a run folder while training it or reading its result.

    A second process that asks for the same run waits here (and says so), then finds the
    finished record instead of training the run a second time.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is training {folder} ...", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def git_commit() -> str:
    """The commit of the code that produced a result ("unknown" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
