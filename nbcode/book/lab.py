"""Read and run the chapters in JupyterLab, set up for this book:  python -m nbcode.book.lab

JupyterLab starts in notebooks/ with the settings kept in notebooks/.jupyter (nothing in your
own Jupyter configuration changes):
- a double-click opens a chapter (`NN_topic.py`) as a notebook, not in the text editor;
- saving writes the `.py` (the source of truth, unchanged unless you edited it) and a paired
  `.ipynb` that keeps the outputs; the `.ipynb` files are hidden from the file browser, so each
  chapter is listed once (notebooks/jupytext.toml pairs new notebooks the same way);
- the state of progress-bar widgets is saved, so a reopened chapter shows its bars.

Extra arguments go to `jupyter lab`, e.g. `python -m nbcode.book.lab --port 8899 --no-browser`.
The launcher replaces itself with JupyterLab (exec): its process is the server, so a signal
sent to it (Ctrl-C, or SIGTERM from a process manager) stops JupyterLab, never orphans it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CONFIG = NOTEBOOKS / ".jupyter"  # jupyter_server_config.json and labconfig/default_setting_overrides.json


def lab_environment(environment: dict[str, str] | None = None) -> dict[str, str]:
    """`environment` (default: this process's) with the book's Jupyter settings put first on
    JUPYTER_CONFIG_PATH, where both the server and JupyterLab's settings look."""
    environment = dict(os.environ if environment is None else environment)
    paths = [str(CONFIG), *filter(None, environment.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))]
    environment["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    return environment


def lab_command(*arguments: str) -> list[str]:
    """The command line that starts JupyterLab on the chapters, with `arguments` appended."""
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS}", *arguments]


def main() -> None:
    command = lab_command(*sys.argv[1:])
    os.execve(command[0], command, lab_environment())


if __name__ == "__main__":
    main()
