"""Test-wide set-up: the smoke profile everywhere, a fresh empty runs folder (every training
really runs), and no network, in this process and in every process the tests start (notebook
kernels included)."""
import os
import runpy
import shutil
import tempfile
from pathlib import Path

import pytest

OFFLINE = Path(__file__).parent / "tests" / "offline"

os.environ["NBCODE_PROFILE"] = "smoke"
os.environ["NBCODE_RUNS"] = tempfile.mkdtemp(prefix="nbcode-test-runs-")  # nothing cached from earlier runs
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OFFLINE), os.environ.get("PYTHONPATH")]))
runpy.run_path(str(OFFLINE / "sitecustomize.py"))  # the same guard in this process


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary the browser tests drive: $NBCODE_CHROMIUM, else `chromium` on the PATH.

    Without one the browser tests are skipped, with a reason that says how to enable them; under
    CI ($CI set, as .ci/run sets it) a missing Chromium fails them instead, so that CI always
    tests the browser path."""
    path = os.environ.get("NBCODE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path and Path(path).exists():
        return path
    message = ("Chromium is missing, so the browser tests (the book's pages, JupyterLab) cannot run: install "
               "it (Debian/Ubuntu: apt-get install chromium) or set NBCODE_CHROMIUM to a Chromium or Chrome "
               "binary")
    if os.environ.get("CI"):
        pytest.fail(f"{message}. CI is set: the browser tests must run there.")
    pytest.skip(message)
