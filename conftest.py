"""Test-wide set-up: the smoke profile everywhere, a fresh empty runs folder (every training
really runs), and no network, in this process and in every process the tests start (notebook
kernels included)."""
import os
import runpy
import tempfile
from pathlib import Path

OFFLINE = Path(__file__).parent / "tests" / "offline"

os.environ["NBCODE_PROFILE"] = "smoke"
os.environ["NBCODE_RUNS"] = tempfile.mkdtemp(prefix="nbcode-test-runs-")  # nothing cached from earlier runs
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OFFLINE), os.environ.get("PYTHONPATH")]))
runpy.run_path(str(OFFLINE / "sitecustomize.py"))  # the same guard in this process
