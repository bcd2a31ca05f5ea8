"""Build the book at the smoke profile and read every page in a real (headless) Chromium.

The page-reading test needs a Chromium (the `chromium` fixture of conftest.py: skipped without one,
except under CI, where .ci/run installs Debian's)."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jupytext
import matplotlib.pyplot as plt
import pytest
import torch
from playwright.sync_api import sync_playwright

from nbcode.book.build import BOOK, NotebookFailed, build, committed_grids, execute_notebooks, source_key, write_pages
from nbcode.book.committed import committed_stages, load_committed
from nbcode.book.report import gan_table, measured_at, recipe_cells, with_training_precision
from nbcode.gan import LATENT

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

PAGE_CHECK = """() => {
  const images = [...document.querySelectorAll('main img')];
  const math = document.querySelectorAll('main .math');
  const rendered = document.querySelectorAll('main .MathJax, main .MathJax_CHTML, main .MathJax_Display, main mjx-container');
  return {
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    math: math.length,
    rendered: rendered.length,
    errors: document.querySelectorAll('main .output.error, main .output.traceback, main .stderr .ansi-red-fg').length,
    sideways: [...document.querySelectorAll('main div.highlight pre, main div.cell_output pre')]
      .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 80)),
    text: document.querySelector('main') ? document.querySelector('main').innerText : '',
  };
}"""


@pytest.fixture(scope="module")
def html() -> Path:
    return build("smoke")


def test_every_page_loads_with_images_math_and_no_errors(html, chromium):
    pages = sorted(html.glob("_generated/*.html")) + [html / "intro.html", html / "results.html",
                                                       html / "references.html"]
    assert len(pages) == 12
    math_rendered = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path in pages:
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            if page.locator("main .math").count():
                page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 "
                                       "&& document.querySelectorAll('main .MathJax, main .MathJax_Display').length > 0",
                                       timeout=30_000)
            found = page.evaluate(PAGE_CHECK)
            assert found["broken"] == [], f"{path.name}: images that did not load: {found['broken']}"
            assert found["errors"] == 0, f"{path.name}: shows error output"
            assert found["sideways"] == [], f"{path.name}: code that scrolls sideways at 1280 px: {found['sideways']}"
            assert "Traceback (most recent call last)" not in found["text"], f"{path.name}: shows a traceback"
            if found["math"]:
                assert found["rendered"] > 0, f"{path.name}: math was not rendered"
                math_rendered += 1
            if path.parent.name == "_generated":
                assert found["images"] > 0 or "01_" in path.name or "05_" in path.name, f"{path.name}: no figures"
        page.goto((html / "_generated" / "04_adaptive_weights.html").as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(html / "screenshot.png"), full_page=False)
        browser.close()
    assert math_rendered >= 3  # chapters 1, 3 and 4 at least hold equations
    assert (html / "screenshot.png").stat().st_size > 10_000


def test_landing_page_sets_the_papers_claims_beside_ours(html):
    intro = (BOOK / "intro.md").read_text()
    assert "| the paper's claim | paper | ours | measured at | status |" in intro
    card = intro[intro.index("| the paper's claim"):].split("\n\n")[0].splitlines()[2:]
    claims = [line for line in card if line.startswith("| ")]
    assert len(claims) == 12  # parameters (3), accuracies (2), FIDs (2), LPIPS, qualitative (2), future work (2)
    future = [line for line in claims if line.startswith("| Future work")]
    assert len(future) == 2 and not [line for line in future if "no run yet" in line]  # chapter 8's runs
    assert "| 57.7% ± 2.3% |" in intro and "| 38.27 |" in intro and "| 0.23 (settings not stated) |" in intro
    assert "| 94,372 | 94,372 |" in intro and "smoke profile" in intro and "not comparable yet" in intro
    results = (html / "results.html").read_text()
    assert "Test accuracy at each evaluation" in results and "FID (real vs real)" in results
    assert "GAN losses during training" in results
    pages = (BOOK / "results.md").read_text()  # this build's GAN runs, then the committed export's
    assert "source0-gan-losses.png" in pages and "source1-gan-losses.png" in pages
    assert "LPIPS to nearest (real)" in results and "{'" not in results


def test_a_failing_notebook_fails_the_build_and_names_it(tmp_path, monkeypatch):
    broken = tmp_path / "99_broken.py"
    broken.write_text("# %%\nraise ValueError('this notebook is broken on purpose')\n")
    monkeypatch.setattr("nbcode.book.build.NOTEBOOKS", tmp_path)
    monkeypatch.setattr("nbcode.book.build.GENERATED", tmp_path / "_generated")
    with pytest.raises(NotebookFailed, match="notebook 99_broken.py failed"):
        build("smoke")


def test_pages_without_records_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv("NBCODE_RUNS", str(tmp_path))
    monkeypatch.setattr("nbcode.book.build.BOOK", tmp_path)
    monkeypatch.setattr("nbcode.book.build.GENERATED", tmp_path / "_generated")
    monkeypatch.setattr("nbcode.book.committed.RESULTS", tmp_path / "results")  # none committed
    (tmp_path / "intro_header.md").write_text("# Title\n")
    write_pages("paper")
    assert "No finished runs at this profile" in (tmp_path / "intro.md").read_text()


def test_no_chapter_shows_a_warning_or_a_path_of_this_machine(html):
    import nbformat
    machine_paths = [str(Path.home()), str(BOOK.parent), "/tmp/"]
    for notebook in sorted((BOOK / "_generated").glob("*.ipynb")):
        for cell in nbformat.read(notebook, as_version=4).cells:
            for output in cell.get("outputs", []):
                assert output.get("name") != "stderr", f"{notebook.name}: stderr output {output.get('text', '')[:300]}"
                text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
                leaked = [path for path in machine_paths if path in text]
                assert not leaked, f"{notebook.name}: output shows {leaked}: {text[:300]}"


REPR = re.compile(r"\{'[^']+': |\{\"[^\"]+\": |^\[\{|<[\w.]+ object at 0x|^[A-Z]\w+\(\w+=")


def test_no_chapter_shows_a_dict_or_object_repr(html):
    """Outputs are sentences, tables and plots: never a raw dict, a dataclass repr or an object address."""
    import nbformat
    found = []
    for notebook in sorted((BOOK / "_generated").glob("*.ipynb")):
        for cell in nbformat.read(notebook, as_version=4).cells:
            for output in cell.get("outputs", []):
                text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
                found += [f"{notebook.name}: {line[:120]}" for line in text.splitlines() if REPR.search(line)]
    assert not found, "\n".join(found)


def test_every_exercise_has_a_worked_solution_folded_away(html):
    """Each chapter's exercises are followed by a solution cell tagged hide-cell, which the book
    renders closed (a <details> toggle) and nbval executes like every other cell."""
    for source in sorted((BOOK.parent / "notebooks").glob("[0-9][0-9]_*.py")):
        notebook = jupytext.read(source)
        headings = [i for i, cell in enumerate(notebook.cells) if cell.source.startswith("### Solutions")]
        assert len(headings) == 1, f"{source.name}: no Solutions section"
        solution = notebook.cells[headings[0] + 1]
        assert solution.cell_type == "code" and "hide-cell" in solution.metadata.get("tags", []), source.name
        page = (html / "_generated" / f"{source.stem}.html").read_text()
        folded = re.search(r'id="solutions".*?<div class="cell tag_hide-cell[^"]*">\s*<details class="[^"]*\bhide\b'
                           r'[^"]*">(.*?)</details>', page, re.DOTALL)
        assert folded, f"{source.stem}.html: the solution is not folded away"
        assert "cell_input" in folded[1] and "cell_output" in folded[1], f"{source.stem}.html: code or answer shown"


def test_notebook_code_fits_the_books_width():
    """The book shows code cells without a sideways scroll bar up to 100 characters."""
    too_long = [f"{source.name}:{number}: {len(line)} characters"
                for source in sorted((BOOK.parent / "notebooks").glob("[0-9][0-9]_*.py"))
                for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1)
                if len(line) > 100]
    assert not too_long, "\n".join(too_long)


def test_a_damaged_executed_notebook_is_named_and_executed_again(tmp_path, monkeypatch, capsys):
    (tmp_path / "98_tiny.py").write_text("# %%\nprint(6 * 7)\n")
    monkeypatch.setattr("nbcode.book.build.ROOT", tmp_path)
    monkeypatch.setattr("nbcode.book.build.NOTEBOOKS", tmp_path)
    monkeypatch.setattr("nbcode.book.build.GENERATED", tmp_path / "_generated")
    (tmp_path / "_generated").mkdir()
    (tmp_path / "_generated" / "98_tiny.ipynb").write_text('{"cells": [')  # a build killed mid-write
    [target] = execute_notebooks("smoke")
    out = capsys.readouterr()
    assert "_generated/98_tiny.ipynb cannot be read (NotJSONError); executing it again" in out.out
    assert "42" in target.read_text()
    assert "IPKernelApp" not in out.err  # the kernel's connection warning stays out of the reader's terminal
    assert not list((tmp_path / "_generated").glob(".*partial"))


def test_ctrl_c_during_a_build_says_that_the_next_build_resumes(tmp_path):
    (tmp_path / "97_slow.py").write_text("# %%\nimport time\ntime.sleep(120)\n")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import nbcode.book.build as build
        build.NOTEBOOKS, build.GENERATED, build.ROOT = Path({str(tmp_path)!r}), Path({str(tmp_path)!r}) / "g", Path("/")
        try:
            build.execute_notebooks("smoke")
        except build.BuildInterrupted as error:
            print(error, file=sys.stderr)
            sys.exit(130)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob("g")) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(8)  # the kernel is running the cell by now
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole group
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted while executing 97_slow.py" in err and "again to continue" in err
    assert "Traceback" not in err and "DeadKernelError" not in err


def test_a_claim_from_two_budgets_gives_each_number_its_own_floor_and_label():
    def evaluation(recipe, profile, n, fid, floor):
        return {"kind": "evaluation", "recipe": recipe, "dataset": "cifar10", "profile": profile,
                "iterations": 50_000 if profile == "paper" else 6_000, "n_generated": n, "n_reference": n,
                "fid": fid, "fid_floor": floor, "precision": "fp32"}

    found = [(evaluation("paper", "paper", 10_000, 30.5, 3.1), "results/paper-cifar10-cpu"),
             (evaluation("improved", "quick", 500, 108.25, 76.06), "this build")]
    ours, where = recipe_cells(found, lambda r: f"{r['fid']:.2f}", lambda r: f"real vs real: {r['fid_floor']:.2f}")
    assert ours == "paper recipe 30.50 (real vs real: 3.10); improved recipe 108.25 (real vs real: 76.06)"
    assert where.startswith("paper recipe: cifar10, paper profile, 50,000 iterations, 10,000 vs 10,000")
    assert "; improved recipe: cifar10, quick profile, 6,000 iterations, 500 vs 500 images, fp32 (this build)" in where
    same = [found[1], (evaluation("paper", "quick", 500, 136.95, 76.06), "this build")]
    ours, where = recipe_cells(same, lambda r: f"{r['fid']:.2f}", lambda r: f"real vs real: {r['fid_floor']:.2f}")
    assert ours == "improved recipe 108.25; paper recipe 136.95 (real vs real: 76.06)"
    assert where == "cifar10, quick profile, 6,000 iterations, 500 vs 500 images, fp32 (this build)"


def test_each_committed_grid_says_whether_its_rows_are_classes(tmp_path, monkeypatch):
    monkeypatch.setattr("nbcode.book.build.BOOK", tmp_path)
    monkeypatch.setattr("nbcode.book.build.GENERATED", tmp_path / "_generated")
    markdown = committed_grids(load_committed())
    captions = {line.split("**")[1]: line for line in markdown.splitlines() if line.startswith("**")}
    records = [json.loads(path.read_text()) for path in BOOK.parent.glob("results/*/records/gan-*.json")]
    assert {r["run"] for r in records} == set(captions)
    for r in records:
        layout = "one class per row" if r["settings"]["conditional"] else "unconditional, no class asked"
        assert captions[r["run"]].endswith(layout), captions[r["run"]]
    assert any(not r["settings"]["conditional"] for r in records)  # the unconditional paper run is committed


def test_each_committed_generator_draws_one_class_per_row_or_no_class():
    [export] = committed_stages("paper")
    gans = [stage for stage, record in export.stages.items() if record["kind"] == "gan"]
    assert len(gans) >= 4  # the paper, improved, unconditional and hinge runs are committed
    for stage in gans:
        record = export.stages[stage]
        fig = export.sample_grid(stage, torch.randn(12 * 3, LATENT, generator=torch.Generator().manual_seed(0)))
        captions = [ax.get_title(loc="left") for ax in fig.axes]
        assert len(captions) == 36 and fig.texts[0].get_text().startswith(f"{stage}: 50,000 iterations x 64")
        if record["settings"]["conditional"]:  # each row opens with its class's name, first three classes
            assert captions[::12] == [name[:12] for name in record["classes"][:3]] and not any(captions[1:12])
        else:
            assert not any(captions)
        plt.close(fig)


def test_an_evaluation_is_labelled_with_the_precision_its_gan_was_trained_at():
    scored = {"kind": "evaluation", "run": "gan-a", "recipe": "paper", "dataset": "cifar10", "profile": "paper",
              "iterations": 50_000, "n_generated": 10_000, "n_reference": 10_000, "fid": 28.7, "fid_floor": 5.1,
              "conditional": True, "loss": "aw", "generator": "table1", "kid_mean": 0.018, "kid_std": 0.001,
              "kid_floor": 0.0, "lpips_mean": 0.143, "lpips_real_mean": 0.136}
    orphan = scored | {"run": "gan-b", "recipe": "improved", "fid": 24.3}
    records = with_training_precision([{"kind": "gan", "run": "gan-a", "precision": "fp32"}, scored, orphan])
    assert records[1]["precision"] == "fp32" and "precision" not in scored  # a copy: the record read is kept
    assert measured_at(records[1], "results/x") == ("cifar10, paper profile, 50,000 iterations, "
                                                    "10,000 vs 10,000 images, fp32 (results/x)")
    assert measured_at(records[2], "results/x").endswith("images, precision not on record (results/x)")
    ours, where = recipe_cells([(records[1], "results/x"), (records[2], "results/x")], lambda r: f"{r['fid']:.1f}")
    assert ours == "paper recipe 28.7; improved recipe 24.3"
    assert where.startswith("paper recipe: ") and "fp32 (results/x); improved recipe: " in where
    assert "| 28.70 (5.10) |" in gan_table(records) and "fp32 |" in gan_table(records)


def test_a_new_export_re_executes_only_the_chapters_that_read_results(tmp_path, monkeypatch):
    monkeypatch.setattr("nbcode.book.committed.RESULTS", tmp_path / "results")
    reader, other = tmp_path / "02_reader.py", tmp_path / "01_other.py"
    reader.write_text("from nbcode.book.committed import committed_stages\n")
    other.write_text("import torch\n")
    before = {notebook: source_key(notebook, "quick") for notebook in (reader, other)}
    (tmp_path / "results" / "paper-cifar10-cpu").mkdir(parents=True)
    (tmp_path / "results" / "paper-cifar10-cpu" / "manifest.json").write_text("{}")
    assert source_key(reader, "quick") != before[reader]
    assert source_key(other, "quick") == before[other]
