"""Checkpoints written atomically and read back safely, and where runs live on disk.

    save_checkpoint(path, {"step": 100, "model": model.state_dict(), ...})
    state = load_checkpoint(path, architecture="DSResNet(32, 64, 96, 128)")

A checkpoint is a dict of tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: no pickled code runs when a file is opened.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import torch

RUNS_VARIABLE = "NBCODE_RUNS"


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for another model than the one loading it."""


def runs_root(root: str | Path | None = None) -> Path:
    """`root`, else $NBCODE_RUNS, else ~/.cache/nbcode/runs: where trained artefacts are cached."""
    return Path(root or os.environ.get(RUNS_VARIABLE) or Path.home() / ".cache" / "nbcode" / "runs")


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically: to a temporary file beside it, then rename.

    A crash mid-write leaves the previous checkpoint intact, never a truncated file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, architecture: str, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint with weights_only=True and check it was written for `architecture`.

    Raises:
        CheckpointMismatchError: the file records another architecture; the message names both.
    """
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("architecture") != architecture:
        raise CheckpointMismatchError(
            f"{path} holds a checkpoint of {state.get('architecture')!r}, not of {architecture!r}. "
            f"Delete it, or load it with the model it was trained with.")
    return state


def write_json(path: Path, record: dict) -> None:
    """Write a metrics record as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, path)


def git_commit() -> str:
    """The commit of the code that produced a result ("unknown" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
