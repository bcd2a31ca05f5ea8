"""Show nbcode's own source inside a notebook, so the text and the code it explains cannot drift."""
from __future__ import annotations

import inspect

from IPython.display import Markdown


def show_source(obj: object) -> Markdown:
    """The source of a function, class or module from nbcode, rendered as a Python code block."""
    return Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```")
