"""Build the static book: execute every notebook at a profile, then build HTML with Jupyter Book 1.

    python -m nbcode.book --profile quick        # the project's main job

1. Each `notebooks/NN_*.py` is executed (nbclient) into `book/_generated/NN_*.ipynb`. A notebook
   is re-executed only when its source, nbcode's source, the profile or the data settings
   changed, so a rebuild after a small change is fast. A failing notebook stops the build with
   its name and the error.
2. The landing page and the results page are written from the run records (metrics JSON that
   training and evaluation leave under the runs root): nothing on them is typed by hand.
3. `jupyter-book build book` makes the HTML, with MathJax served from the book itself
   (the copy shipped by jupyter-server-mathjax), so math renders without a network.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import jupyter_server_mathjax
import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

from nbcode.book import committed
from nbcode.book.report import (accuracy_figure, classifier_table, fid_figure, gan_loss_figure, gan_table,
                                report_card, with_training_precision)
from nbcode.data.datasets import TORCHVISION_CLASSES, DataMissingError, data_root, dataset_name, ensure_downloaded
from nbcode.runs.cache import CorruptRunFileError, check_record, read_record, runs_root
from nbcode.runs.profiles import PROFILE_VARIABLE, PROFILES, get_profile
from nbcode.runs.scaffold import RECORD, finished_record

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
GENERATED = BOOK / "_generated"
SETTINGS = ("NBCODE_DATASET", "NBCODE_DATA", "NBCODE_UNVERIFIED", "NBCODE_RUNS", "NBCODE_PRECISION")


class NotebookFailed(RuntimeError):
    """A notebook raised an error while the book was being built."""


class HTMLBuildFailed(RuntimeError):
    """jupyter-book could not write the HTML; the message holds the end of its log."""


class BuildInterrupted(RuntimeError):
    """The reader pressed Ctrl-C while the book was being built."""


def source_key(notebook: Path, profile: str) -> str:
    """A hash of everything an executed notebook depends on."""
    source = notebook.read_bytes()
    digest = hashlib.sha256(source)
    for module in sorted((ROOT / "nbcode").rglob("*.py")):
        if module.name != "build.py":  # the builder itself does not change what a notebook computes
            digest.update(module.read_bytes())
    digest.update(profile.encode())
    for name in SETTINGS:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    digest.update(data_state().encode())
    if b"nbcode.book.committed" in source:  # a chapter that reads the committed exports of results/
        for export in sorted(committed.RESULTS.rglob("*.json")):
            digest.update(export.relative_to(committed.RESULTS).as_posix().encode() + export.read_bytes())
    return digest.hexdigest()


def data_state() -> str:
    """The files of the dataset the notebooks load (name, size, modification time each), or
    "absent": a book built on the synthetic fallback is executed again once the data appears."""
    name = dataset_name()
    if name not in TORCHVISION_CLASSES:
        return name
    folder = data_root() / TORCHVISION_CLASSES[name].base_folder
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return ";".join(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in files) or "absent"


def execute_notebooks(profile: str) -> list[Path]:
    """Execute every notebook at `profile` into book/_generated, reusing unchanged results."""
    GENERATED.mkdir(parents=True, exist_ok=True)
    os.environ[PROFILE_VARIABLE] = profile  # the kernels inherit it
    outputs = []
    for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        target = GENERATED / f"{source.stem}.ipynb"
        key = source_key(source, profile)
        if executed_key(target) == key:
            print(f"{source.name}: unchanged, reusing {target.relative_to(ROOT)}")
        else:
            print(f"{source.name}: executing at profile {profile} ...", flush=True)
            notebook, seconds = execute(source, profile)
            notebook.metadata["nbcode_key"] = key
            notebook.metadata["nbcode_seconds"] = round(seconds, 1)
            partial = target.with_name(f".{target.name}.partial")
            nbformat.write(notebook, partial)
            os.replace(partial, target)  # a killed build never leaves a truncated notebook behind
            print(f"{source.name}: executed in {seconds / 60:.1f} min", flush=True)
        outputs.append(target)
    return outputs


def executed_key(target: Path) -> str | None:
    """The source key an executed notebook was made from; None when there is none or the file
    cannot be read (then, with a note naming it, it is executed again)."""
    if not target.exists():
        return None
    try:
        return nbformat.read(target, as_version=4).metadata.get("nbcode_key")
    except Exception as error:  # nbformat raises NotJSONError, ValidationError, ... for a damaged file
        print(f"{target.relative_to(ROOT)} cannot be read ({type(error).__name__}); executing it again")
        return None


def execute(source: Path, profile: str) -> tuple[nbformat.NotebookNode, float]:
    """Run the notebook `source` in a fresh kernel; return it with its outputs, and the seconds it took.
    On a terminal, one line shows which cell is running and for how long.

    Raises:
        NotebookFailed: a cell raised, or the kernel died; the message names the notebook.
        BuildInterrupted: Ctrl-C (whatever the kernel and nbclient raise after it); the message
            says how the next build resumes.
    """
    notebook = jupytext.read(source)
    started = time.perf_counter()
    client = NotebookClient(notebook, timeout=None, kernel_name="python3",
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no connection warnings
                            resources={"metadata": {"path": str(NOTEBOOKS)}},
                            on_cell_start=cell_status(source, notebook, started) if sys.stderr.isatty() else None)
    interrupts = []

    def interrupt(signum: int, frame: object) -> None:
        interrupts.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    log = GENERATED / f"{source.stem}.kernel.log"  # the kernel's own messages, kept off the reader's terminal
    try:
        with log.open("w") as kernel_stderr:
            client.execute(stderr=kernel_stderr)
    except BaseException as error:
        # While the kernel runs, nbclient answers SIGINT itself: it shuts the kernel down and keeps
        # that shutdown on the client, and the errors that follow (a dead kernel, a failed second
        # clean-up) are its consequences, not the notebook's.
        stopped = getattr(client, "_async_cleanup_kernel_future", None) is not None
        if interrupts or stopped or (isinstance(error, CellExecutionError) and error.ename == "KeyboardInterrupt"):
            raise BuildInterrupted(interrupted_message(source, profile)) from None
        if isinstance(error, CellExecutionError):
            raise NotebookFailed(f"notebook {source.name} failed at profile {profile}:\n{error}") from None
        if isinstance(error, DeadKernelError):
            raise NotebookFailed(f"the kernel running {source.name} died (it was killed or ran out of memory; its "
                                 f"log: {log}); run the build again to retry it") from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        if sys.stderr.isatty():
            print("\r" + " " * 110 + "\r", end="", file=sys.stderr, flush=True)
    return notebook, time.perf_counter() - started


def cell_status(source: Path, notebook: nbformat.NotebookNode, started: float) -> Callable[..., None]:
    """An nbclient on_cell_start hook that rewrites one terminal line: the notebook, which code
    cell of how many is running, the minutes since `started`, and the cell's first code line."""
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]

    def show(cell: nbformat.NotebookNode, cell_index: int) -> None:
        line = next((text for text in cell.source.splitlines() if text.strip() and not text.startswith("#")), "")
        status = (f"{source.name}: cell {code.index(cell_index) + 1} of {len(code)}, "
                  f"{(time.perf_counter() - started) / 60:.1f} min: {line.strip()[:60]}")
        print(f"\r{status:<110}", end="", file=sys.stderr, flush=True)

    return show


def interrupted_message(source: Path, profile: str) -> str:
    """What an interrupted build tells its reader."""
    return (f"interrupted while executing {source.name}. The chapters executed before it are kept, finished "
            f"training runs are cached and an unfinished one resumes from its last checkpoint: run "
            f"`python -m nbcode.book --profile {profile}` again to continue.")


def chapter_times() -> str:
    """Markdown: how long each chapter took to execute when it was last run (read from the
    executed notebooks), with the profile and data settings it ran at."""
    times = {target.stem: nbformat.read(target, as_version=4).metadata.get("nbcode_seconds")
             for target in sorted(GENERATED.glob("[0-9][0-9]_*.ipynb"))}
    times = {chapter: seconds for chapter, seconds in times.items() if seconds is not None}
    if not times:
        return ""
    lines = [f"| {chapter} | {seconds / 60:.1f} min |" for chapter, seconds in times.items()]
    total = sum(times.values()) / 60
    return ("\n## How long each chapter took\n\nWall time of each notebook's last execution on the machine "
            "that built this book (training included when a run was not cached):\n\n"
            "| chapter | executed in |\n|---|---|\n" + "\n".join(lines) + f"\n| all | {total:.1f} min |\n")


def load_records(profile: str) -> list[dict]:
    """Every run record (classifier, GAN, evaluation) under the runs root made at `profile`."""
    runs = [finished_record(path.parent, lambda record: True) for path in sorted(runs_root().glob(f"*/*/{RECORD}"))]
    evaluations = [_checked(path) for path in sorted(runs_root().glob("evaluation/*.json"))]
    return [record for record in runs + evaluations if record is not None and record.get("profile") == profile]


def _checked(path: Path) -> dict | None:
    """The record at `path` after `check_record`; None when it cannot be read or fails its checks,
    with a warning naming it."""
    record = read_record(path)
    if record is None:
        return None
    try:
        check_record(record, path)
    except CorruptRunFileError as error:
        warnings.warn(f"{error} Left off the pages.", stacklevel=2)
        return None
    return record


def figure_markdown(figure, name: str, caption: str) -> str:
    """Save a matplotlib figure under book/_generated/report/ and return the markdown showing it."""
    path = GENERATED / "report" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return f"![{caption}]({path.relative_to(BOOK).as_posix()})\n\n{caption}\n"


def results_section(label: str, records: list[dict], name: str) -> str:
    """Markdown for one source of records: the classifier runs (plot, table), then the GANs."""
    parts = [f"## {label}\n"]
    if any(r["kind"] == "classifier" and "final" in r for r in records):
        parts += [figure_markdown(accuracy_figure(records, label), f"{name}-accuracy",
                                  "Test accuracy at each evaluation of every finished classifier run."),
                  classifier_table(records) + "\n"]
    if any(r["kind"] == "gan" and "log" in r for r in records):
        parts += [figure_markdown(gan_loss_figure(records, label), f"{name}-gan-losses",
                                  "GAN losses during training: discriminator and generator loss of every "
                                  "finished GAN run against its iterations (moving average).")]
    if any(r["kind"] == "evaluation" for r in records):
        parts += [figure_markdown(fid_figure(records, label), f"{name}-fid",
                                  "FID and KID of each GAN beside real training images scored against the "
                                  "same test images (the floor at that sample count)."),
                  gan_table(records) + "\n"]
    return "\n".join(parts) if len(parts) > 1 else f"{parts[0]}\n_No finished runs._\n"


def committed_grids(exports: list[tuple[str, dict, list[dict]]]) -> str:
    """Markdown showing the final sample grid of every GAN run in `exports` (`load_committed`),
    copied into the book, with its layout read off the run's settings (one class per row, or no
    class asked), as `CommittedExport.sample_grid` draws it."""
    lines = []
    for folder, _, records in exports:
        for record in (r for r in records if r["kind"] == "gan"):
            grid = committed.RESULTS / folder / "grids" / f"{record['run']}.png"
            target = GENERATED / "results" / folder / grid.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(grid, target)
            layout = "one class per row" if record["settings"]["conditional"] else "unconditional, no class asked"
            lines.append(f"**{record['run']}** ({folder}): final samples of the averaged generator, "
                         f"{layout}\n\n![{record['run']}]({target.relative_to(BOOK).as_posix()})\n")
    return "\n".join(lines)


def write_pages(profile: str) -> None:
    """The landing page (the paper's report card, then the chapters' times) and the results page
    (tables and plots of every run), from the records of `profile` under the runs root (this
    build) and the committed exports of results/, each labelled."""
    local, exports = load_records(profile), committed.load_committed()
    sources = [("this build", with_training_precision(local))]
    sources += [(f"results/{folder}", records) for folder, _, records in exports]
    headings = [f"This build ({profile} profile, this machine)"]
    headings += [committed.committed_label(manifest) for _, manifest, _ in exports]
    empty = "" if local else "\n_No finished runs at this profile were found under the runs root._\n"
    (BOOK / "intro.md").write_text(
        f"{(BOOK / 'intro_header.md').read_text()}\n## The paper's claims beside ours\n\nOne row per claim of "
        f"the paper. Ours is the record of the largest budget found (committed paper-profile exports first, "
        f"else this build, profile **{profile}**); only CIFAR-100 at the paper's budget is compared with the "
        f"paper's figure, every other row says \"not comparable yet\" and what it was measured at.\n{empty}\n"
        f"{report_card(sources)}{chapter_times()}")
    sections = [results_section(heading, records, f"source{i}")
                for i, (heading, (_, records)) in enumerate(zip(headings, sources))]
    grids = committed_grids(exports)
    (BOOK / "results.md").write_text(
        "# Results\n\nEvery number and plot on this page is read from run records (the metrics JSON that "
        "training and evaluation write), never typed.\n\n" + "\n".join(sections)
        + (f"\n## Final samples of the committed GAN runs\n\n{grids}" if grids else ""))


def build(profile: str) -> Path:
    """Download the data if a first run needs it, execute, write the generated pages, build the
    HTML; return the HTML folder."""
    ensure_downloaded(get_profile(profile))
    execute_notebooks(profile)
    write_pages(profile)
    command = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    log = BOOK / "_build" / "jupyter-book.log"  # Sphinx's log: shown only when the HTML build fails
    log.parent.mkdir(parents=True, exist_ok=True)
    print("writing the HTML with jupyter-book ...", flush=True)
    with open(log, "w") as output:
        result = subprocess.run([command, "build", str(BOOK)], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    if result.returncode:
        raise HTMLBuildFailed(f"jupyter-book build failed (exit {result.returncode}); the end of its log "
                           f"({log}):\n{log.read_text()[-3000:]}")
    html = BOOK / "_build" / "html"
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", html / "_static" / "mathjax",
                    dirs_exist_ok=True)
    return html


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nbcode.book", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    args = parser.parse_args()
    get_profile(args.profile)
    try:
        html = build(args.profile)
    except (NotebookFailed, HTMLBuildFailed, DataMissingError) as error:
        sys.exit(str(error))
    except BuildInterrupted as error:
        print(error, file=sys.stderr)
        sys.exit(130)
    print(f"book built: {html / 'index.html'}")


if __name__ == "__main__":
    main()
