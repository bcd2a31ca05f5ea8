"""Without a Chromium the browser tests are skipped with a reason that says how to enable them;
under CI ($CI set) they fail instead, so CI never passes them silently."""
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
BROWSER_TEST = "tests/test_lab.py::test_a_chapter_opens_as_a_notebook_runs_and_saves_without_changing_its_source"


def run_browser_test(ci: bool) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment["NBCODE_CHROMIUM"] = str(ROOT / "no-such-chromium")
    if ci:
        environment["CI"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", BROWSER_TEST, "-q", "-rs"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_a_missing_chromium_skips_the_browser_tests_and_says_how_to_enable_them():
    result = run_browser_test(ci=False)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout
    assert "apt-get install chromium" in result.stdout and "NBCODE_CHROMIUM" in result.stdout


def test_a_missing_chromium_fails_the_browser_tests_under_ci():
    result = run_browser_test(ci=True)
    assert result.returncode != 0
    assert "CI is set: the browser tests must run there" in result.stdout
