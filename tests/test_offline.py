"""The tests must never reach the network: the guard must fail loudly, here and in child processes."""
import subprocess
import sys
import urllib.request

import pytest


def test_network_access_fails_loudly_in_the_test_process():
    with pytest.raises(RuntimeError, match="must not touch the network"):
        urllib.request.urlopen("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", timeout=5)


def test_network_access_fails_loudly_in_child_processes():
    code = "import urllib.request; urllib.request.urlopen('https://download.pytorch.org', timeout=5)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "must not touch the network" in result.stderr
