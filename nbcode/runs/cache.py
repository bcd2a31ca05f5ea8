"""Checkpoints written atomically and read back safely, run folders, their locks and run records.

    save_checkpoint(path, {"run": name, "step": 100, "model": model.state_dict(), ...})
    state = load_checkpoint(path, "DSResNet(32, 64, 96, 128)", keys=("model",), run=name, step=100)

A checkpoint is a dict of tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: no pickled code runs when a file is opened, and a checkpoint
of another model, run or step, or with NaN weights, is refused. Derived caches (FID statistics,
converted weights, floors) are read the same way (`load_derived`), so a planted or truncated
file is refused with its name. Every write goes to a temporary file of its own beside the
target, then is renamed over it, so a crash or a second process never leaves a half-written
file; a full disk says so. A run folder is locked while it trains (`run_lock`): a second
process asking for the same run waits, then reads the first one's result. Run records are
checked when read (`check_record`): finite numbers and the keys their readers need.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout

from nbcode.runs.profiles import absolute_path_setting

RUNS_VARIABLE = "NBCODE_RUNS"
LOW_DISK_BYTES = 64 * 2**20  # a failed write with less free space than this is reported as a full disk
# What torch-fidelity's cached statistics hold besides tensors: numpy arrays of float32 / float64.
NUMPY_ARRAY_GLOBALS = [np.dtype, np.ndarray, np.dtypes.Float32DType, np.dtypes.Float64DType,
                       (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct]
# Keys every record of a kind must hold for the book and the loaders to read it.
RECORD_KEYS = {
    "classifier": ("run", "network", "architecture", "num_classes", "width_factor", "recipe", "profile", "steps",
                   "batch", "seed", "dataset", "data", "data_source", "history", "step", "train_seconds"),
    "gan": ("run", "architecture", "settings", "classes", "profile", "iterations", "batch", "seed", "dataset",
            "data", "data_source", "log", "step", "train_seconds"),
    "evaluation": ("run", "run_digest", "conditional", "recipe", "generator", "loss", "seed", "dataset", "profile",
                   "iterations", "fid", "kid_mean", "kid_std", "n_generated", "n_reference", "fid_floor", "kid_floor",
                   "lpips_mean"),
    "training-fid": ("run", "run_digest", "recipe", "generator", "conditional", "loss", "dataset", "profile",
                     "iterations", "seed", "fid", "kid_mean", "kid_std", "n_generated", "n_reference", "fid_floor",
                     "kid_floor"),
    "gan-test": ("run", "run_digest", "recipe", "generator", "dataset", "profile", "iterations", "n_generated",
                 "accuracy", "spread", "chance", "real_accuracy"),
}


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for another model than the one loading it."""


class CorruptRunFileError(ValueError):
    """A file of a run folder or cache is truncated, empty, planted or does not hold what it should."""


def runs_root(root: str | Path | None = None) -> Path:
    """`root`, else $NBCODE_RUNS (which must be absolute), else ~/.cache/nbcode/runs: where
    trained artefacts are cached."""
    return Path(root or absolute_path_setting(RUNS_VARIABLE) or Path.home() / ".cache" / "nbcode" / "runs")


def settings_hash(settings: dict) -> str:
    """Eight hex digits naming a dict of settings (JSON with sorted keys): the part of a run's
    folder name that changes whenever anything that shapes its result does."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def _replace_atomically(path: Path, write: Callable[[str], object]) -> None:
    """Call write(temporary_path) on a fresh temporary file beside `path`, then rename it over `path`.
    The file gets the permissions of a plain new file (0666 less the umask), so a shared cache
    stays readable. A write that fails on a full disk raises OSError(ENOSPC) naming `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)
        write(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, Exception) and _disk_full(error, path.parent):
            raise OSError(errno.ENOSPC, f"no space left on the device writing {path}: free some space "
                                        f"(or point ${RUNS_VARIABLE} at a larger disk) and run again") from error
        raise


def _disk_full(error: Exception, folder: Path) -> bool:
    """Whether a failed write was a full disk: ENOSPC, or an error without errno (torch.save's
    C++ stream says only `basic_ios::clear`) while the disk is all but full."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return shutil.disk_usage(folder).free < LOW_DISK_BYTES


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically: a crash mid-write leaves the previous checkpoint intact."""
    _replace_atomically(path, lambda temporary: torch.save(state, temporary))


def load_checkpoint(path: Path, architecture: str, device: torch.device | str = "cpu",
                    keys: tuple[str, ...] = (), run: str | None = None, step: int | None = None) -> dict:
    """Read a checkpoint with weights_only=True and check it was written for `architecture`, by
    the run named `run` at step `step` (when given), and that every tensor in it is finite.

    Args:
        keys: entries the checkpoint must hold (besides "architecture", "run" and "step").
    Raises:
        CorruptRunFileError: the file cannot be read, is not a dict with `keys` or holds NaN or
            infinite values; names the file and what to do.
        CheckpointMismatchError: the file records another architecture, run or step; the message
            names both.
    """
    fix = f"Delete the run folder {path.parent} to train this run again from its start."
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise CorruptRunFileError(f"{path} cannot be read ({type(error).__name__}: {str(error)[:200]}). "
                                  f"It is truncated, corrupted or not a plain checkpoint. {fix}") from error
    if not isinstance(state, dict):
        raise CorruptRunFileError(f"{path} holds a {type(state).__name__}, not a checkpoint dict. {fix}")
    missing = [key for key in ("architecture", "run", "step", *keys) if key not in state]
    if missing:
        raise CorruptRunFileError(f"{path} lacks {', '.join(missing)}: it is not a complete checkpoint (or was "
                                  f"written by an older nbcode). {fix}")
    for name, wanted in (("architecture", architecture), ("run", run), ("step", step)):
        if wanted is not None and state[name] != wanted:
            raise CheckpointMismatchError(
                f"{path} holds a checkpoint of {name} {state[name]!r}, not of {wanted!r}: it was copied from "
                f"another run or time. Restore the right file, or delete {path.parent} to train this run again.")
    bad = next((key for key, value in _leaves(state) if isinstance(value, torch.Tensor)
                and value.is_floating_point() and not value.isfinite().all()), None)
    if bad is not None:
        raise CorruptRunFileError(f"{path} holds NaN or infinite values (in {bad}). {fix}")
    return state


def _leaves(value: object, key: str = "") -> Iterator[tuple[str, object]]:
    """Every value inside nested dicts, lists and tuples that is none of those, with the path of
    keys that leads to it (e.g. "g_opt.state.3.exp_avg")."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{key}[{i}]")
    else:
        yield key, value


def load_derived(path: Path, numpy_arrays: bool = False) -> object:
    """A cached file derived from other data (FID statistics, converted weights, a floor), read
    with weights_only=True (and numpy float arrays admitted with `numpy_arrays`): a pickle that
    would run code, or a truncated file, is refused with its name and what to do.

    Raises:
        CorruptRunFileError: the file cannot be read that way.
    """
    try:
        with torch.serialization.safe_globals(NUMPY_ARRAY_GLOBALS if numpy_arrays else []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        problem = f"holds pickled objects other than tensors and arrays ({str(error).splitlines()[-1][:160]})"
    except Exception as error:  # RuntimeError, EOFError, ... for a truncated or corrupted file
        problem = f"cannot be read ({type(error).__name__}: {str(error)[:160]}): it is truncated or corrupted"
    raise CorruptRunFileError(f"{path} {problem}, so it was not loaded. It is a derived cache: delete it and it "
                              f"is computed again on next use.")


def write_json(path: Path, record: dict) -> None:
    """Write a metrics record as indented JSON, atomically."""
    _replace_atomically(path, lambda temporary: Path(temporary).write_text(json.dumps(record, indent=2)))


def record_digest(record: dict) -> str:
    """A SHA-256 of a record's JSON (sorted keys): the checkpoint stores it, so a record edited,
    or restored from another time, is told apart from the one written with the weights."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def check_record(record: dict, path: Path) -> None:
    """Raise CorruptRunFileError unless every number in `record` is finite and it holds the keys
    of its kind (RECORD_KEYS) that the book and the loaders read."""
    missing = [key for key in RECORD_KEYS.get(record.get("kind"), ()) if key not in record]
    if missing:
        raise CorruptRunFileError(f"{path} lacks {', '.join(missing)}: it is incomplete or was written by an "
                                  f"older nbcode. Delete it (and, for a run, its folder) to make it again.")
    bad = next((key for key, value in _leaves(record) if isinstance(value, float) and not math.isfinite(value)),
               None)
    if bad is not None:
        raise CorruptRunFileError(f"{path} holds a NaN or infinite number (at {bad}): it was damaged or edited. "
                                  f"Delete it (and, for a run, its folder) to make it again.")


def parse_record(path: Path) -> dict:
    """The JSON object at `path`.

    Raises:
        CorruptRunFileError: it cannot be read, is not valid JSON, or holds no JSON object.
    """
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise CorruptRunFileError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(record, dict):
        raise CorruptRunFileError(f"{path} holds a {type(record).__name__}, not a run record")
    return record


def read_record(path: Path) -> dict | None:
    """The run record at `path`, or None when there is none or it is not a valid JSON object
    (then with a warning: the run is treated as incomplete and resumes from its checkpoint)."""
    if not path.exists():
        return None
    try:
        return parse_record(path)
    except CorruptRunFileError as error:
        warnings.warn(f"{error}; treating the run as incomplete", stacklevel=2)
        return None


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


@functools.cache
def git_commit() -> str:
    """The commit of the code that produced a result ("unknown" outside a git checkout): HEAD
    when this module was imported (asked below), kept for the process's lifetime, so a record
    written hours into a long run names the code the process loaded, not a commit made since."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


git_commit()  # at import: the first record of a run may be written hours after it started
