"""Show nbcode's own source inside a notebook, so the text and the code it explains cannot drift, and
show warnings there as plain notes."""
from __future__ import annotations

import inspect
import warnings

from IPython.display import Markdown


def show_source(obj: object) -> Markdown:
    """The source of a function, class or module from nbcode, rendered as a Python code block."""
    return Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```")


def print_warnings_as_notes() -> None:
    """From now on, show each Python warning in this notebook as one plain line on stdout,
    "note: <message>", instead of a red stderr box that names the file and line that raised it.

    The notices of nbcode (synthetic stand-in data, a copy whose md5 sums were not checked) stay
    visible to the reader; only their presentation changes. Scripts and tests still get warnings.
    """
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"note: {message}")

    warnings.showwarning = show
