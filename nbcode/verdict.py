"""The one rule every computed answer in the book follows.

    verdict("improved - paper = +3.1 points (spread 1.2)", 3.1, 1.2, "better at this budget")
    # -> "improved - paper = +3.1 points (spread 1.2): better at this budget."

A difference smaller than twice its spread is not an answer: the sentence then says
"inconclusive at this budget", whatever the sign.
"""
from __future__ import annotations

import math


def verdict(measured: str, difference: float, spread: float, conclusion: str) -> str:
    """`measured`, then ": inconclusive at this budget." when |difference| < 2 * spread (or the
    spread is unknown: nan or inf), else ": <conclusion>."."""
    if not math.isfinite(spread) or abs(difference) < 2 * spread:
        return f"{measured}: inconclusive at this budget."
    return f"{measured}: {conclusion}."
