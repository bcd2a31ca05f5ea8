"""JupyterLab as a student meets it: `python -m nbcode.book.lab`, a double-click on a chapter, Run All,
Ctrl+S, and the committed source unchanged. A real JupyterLab server (free port, no token) and
headless Chromium (Debian's chromium, as in test_book.py), at the smoke profile."""
import difflib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from nbcode.book.lab import NOTEBOOKS, lab_command, lab_environment

ROOT = NOTEBOOKS.parent
CHAPTER = "03_spectral_norm.py"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server started exactly as the README says, on a free port; its base URL."""
    port = free_port()
    command = lab_command("--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.token=",
                          "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", "--allow-root",
                          "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(command, env=lab_environment(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, server, tmp_path / "lab.log")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_for_server(url: str, server: subprocess.Popen, log: Path) -> None:
    """Wait (up to a minute) until the Jupyter server at `url` answers; fail with its log if it exits."""
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            return
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within a minute: {log.read_text()[-2000:]}")


def test_sigterm_to_the_lab_launcher_stops_jupyterlab(tmp_path):
    """`python -m nbcode.book.lab` is the JupyterLab process (exec): a process manager's SIGTERM to
    it stops the server and frees its port, leaving no orphan."""
    port = free_port()
    command = [sys.executable, "-m", "nbcode.book.lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.token=", "--ServerApp.password=", "--allow-root",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(tmp_path / "lab.log", "w") as log:
        launcher = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_server(f"http://127.0.0.1:{port}", launcher, tmp_path / "lab.log")
            launcher.terminate()
            assert launcher.wait(timeout=30) is not None
        finally:
            launcher.kill()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens on the port any more


def git_diff(path: Path) -> str:
    return subprocess.run(["git", "diff", "--", str(path)], cwd=ROOT, capture_output=True, text=True).stdout


def open_by_double_click(page, url: str, name: str) -> None:
    page.goto(f"{url}/lab")
    item = page.locator(".jp-DirListing-item", has_text=name)
    expect(item).to_be_visible(timeout=60_000)
    item.dblclick()
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell").first).to_be_visible(timeout=60_000)


def test_a_chapter_opens_as_a_notebook_runs_and_saves_without_changing_its_source(lab, chromium):
    source = NOTEBOOKS / CHAPTER
    clean = git_diff(source) == ""  # as in CI's fresh clone; a developer may have edits of their own
    committed = source.read_bytes()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            listing = page.locator(".jp-DirListing-itemText")
            open_by_double_click(page, lab, CHAPTER)
            names = listing.all_inner_texts()
            assert CHAPTER in names and not [n for n in names if n.endswith(".ipynb")], names  # listed once
            assert page.locator(".jp-FileEditor:visible").count() == 0  # a notebook, not the text editor

            page.locator(".jp-NotebookPanel:visible .jp-Cell").first.click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            cells = page.locator(".jp-NotebookPanel:visible .jp-CodeCell")
            code_cells = cells.count()
            prompts = page.locator(".jp-NotebookPanel:visible .jp-CodeCell .jp-InputArea-prompt")
            page.wait_for_function(
                """n => { const p = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) '
                                                              + '.jp-CodeCell .jp-InputArea-prompt')];
                          return p.length === n && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }""",
                arg=code_cells, timeout=90_000)
            assert prompts.count() == code_cells
            errors = page.locator(".jp-NotebookPanel:visible [data-mime-type='application/vnd.jupyter.error']")
            stderr = page.locator(".jp-NotebookPanel:visible [data-mime-type='application/vnd.jupyter.stderr']")
            assert errors.count() == 0, errors.all_inner_texts()
            assert stderr.count() == 0, stderr.all_inner_texts()  # no warnings, no machine paths
            assert page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output img").count() > 0  # figures

            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-current.jp-mod-dirty")).to_have_count(0, timeout=30_000)
            saved = json.loads(source.with_suffix(".ipynb").read_text())["cells"]
            assert all(c["execution_count"] for c in saved if c["cell_type"] == "code")  # the solution too
            assert source.read_bytes() == committed  # open + run + save: the source of truth is untouched
            assert git_diff(source) == "" or not clean

            page.locator(".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabCloseIcon").click()  # close the tab
            expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(0, timeout=30_000)
            open_by_double_click(page, lab, CHAPTER)  # reopen: outputs come back from the paired .ipynb
            expect(page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output img").first).to_be_visible(
                timeout=30_000)
            page.wait_for_timeout(2000)  # widget views render asynchronously
            assert "Error displaying widget" not in page.locator(".jp-NotebookPanel:visible").inner_text()

            page.locator(".jp-NotebookPanel:visible .jp-CodeCell .cm-content").last.click()  # edit one cell
            page.keyboard.press("Control+End")
            page.keyboard.type("\n# a student's edit")
            page.keyboard.press("Escape")
            page.keyboard.press("Control+s")
            expect(page.locator(".jp-mod-current.jp-mod-dirty")).to_have_count(0, timeout=30_000)
            changed = [line for line in difflib.unified_diff(committed.decode().splitlines(),
                                                             source.read_text().splitlines(), lineterm="", n=0)
                       if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            # only the edited cell changed (the editor may indent the new line inside a block)
            assert [line[0] + line[1:].strip() for line in changed] == ["+# a student's edit"], changed
            browser.close()
    finally:
        source.write_bytes(committed)


def test_a_new_notebook_anywhere_below_the_root_is_paired(lab):
    folder = NOTEBOOKS / "_lab_test_folder"
    try:
        request = urllib.request.Request(f"{lab}/api/contents/_lab_test_folder", method="PUT",
                                         data=json.dumps({"type": "directory"}).encode())
        urllib.request.urlopen(request, timeout=30)
        request = urllib.request.Request(f"{lab}/api/contents/_lab_test_folder/scratch.ipynb", method="PUT",
                                         data=json.dumps({"type": "notebook", "content": {
                                             "cells": [{"cell_type": "code", "source": "1 + 1", "metadata": {},
                                                        "outputs": [], "execution_count": None}],
                                             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}).encode())
        urllib.request.urlopen(request, timeout=30)
        assert (folder / "scratch.py").exists()
        assert "# %%\n1 + 1" in (folder / "scratch.py").read_text()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
